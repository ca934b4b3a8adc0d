"""Raw Kafka message -> validated event, or a rejection with a reason a person can act on."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import get_args

from pydantic import ValidationError

from schemas.events import EVENT_MODELS, AnyEvent, parse_event
from schemas.topics import TopicContract

MAX_MESSAGE_BYTES = 64 * 1024
MAX_DETAIL_PROBLEMS = 10  # problems named in a detail; the rest are counted
# A dead letter carries at most this much of the original value: its base64 (about 342 KiB)
# keeps the dead letter under Kafka's default 1 MB message limit, which a full copy of a
# message near that limit would exceed (the send would fail and the input be lost).
MAX_DEAD_LETTER_VALUE_BYTES = 256 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 1024  # keys are ids; a longer one is bad input itself
MAX_VALUE_TEXT = 4096  # characters of a UTF-8 value repeated as text in its dead letter
_TYPES = ", ".join(get_args(model.model_fields["type"].annotation)[0] for model in EVENT_MODELS)


@dataclass(frozen=True)
class Rejection:
    """Why an input cannot be used. ``reason`` is a stable code, ``detail`` is prose."""

    reason: str
    detail: str


def validate(contract: TopicContract, key: bytes | None, raw: bytes | None) -> AnyEvent | Rejection:
    """Parse and check one message read from ``contract``'s topic.

    Never raises on input: every defect is a :class:`Rejection`. Checked in this order,
    the first defect found decides the reason: size, JSON, type, fields, topic, key.
    """
    if raw is None:
        return Rejection("invalid_json", "the message has no value (null), not a JSON event")
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection("oversized", f"{len(raw)} bytes is over the {MAX_MESSAGE_BYTES} limit")
    try:
        event = parse_event(raw)
    except ValidationError as error:
        return _rejection(error)
    key_field = contract.event_keys.get(event.type)
    if key_field is None:
        return Rejection(
            "wrong_topic", f"{event.type} events do not belong on topic {contract.name}"
        )
    expected = str(getattr(event, key_field))
    if key != expected.encode("utf-8"):  # bytes: a key that is not UTF-8 never matches
        return Rejection(
            "key_mismatch",
            f"message key {_shown(key)} is not the event's {key_field} {expected!r}",
        )
    return event


def _shown(key: bytes | None) -> str:
    """A message key for a detail: its text, or its bytes when it is not UTF-8."""
    if key is None:
        return "(none)"
    try:
        return repr(_short(key.decode("utf-8")))
    except UnicodeDecodeError:
        return f"{key[:64]!r}{'...' if len(key) > 64 else ''} (not UTF-8)"


def _rejection(error: ValidationError) -> Rejection:
    """The reason code of a validation failure, and a detail naming each bad field."""
    problems = error.errors(include_url=False, include_input=False)
    kinds = {problem["type"] for problem in problems}
    if kinds & {"json_invalid", "json_type"}:
        return Rejection("invalid_json", problems[0]["msg"])
    if "union_tag_not_found" in kinds:
        return Rejection("unknown_type", f"the event has no 'type' field (one of {_TYPES})")
    if "union_tag_invalid" in kinds:
        tag = str(problems[0].get("ctx", {}).get("tag", ""))
        return Rejection("unknown_type", f"type {_short(tag)!r} is not one of {_TYPES}")
    details = [f"{_field(problem['loc'][1:])}: {problem['msg']}" for problem in problems]
    detail = "; ".join(details[:MAX_DETAIL_PROBLEMS])
    if len(details) > MAX_DETAIL_PROBLEMS:
        detail += f"; and {len(details) - MAX_DETAIL_PROBLEMS} more"
    return Rejection("invalid_event", detail)


def _field(loc: tuple[int | str, ...]) -> str:
    """The field a problem is about (``(event)`` for the whole event), as in the JSON."""
    if not loc:
        return "(event)"
    return _short(".".join(str(part) or '""' for part in loc))


def _short(text: str, limit: int = 64) -> str:
    """A field name or value cut to ``limit`` characters for a readable detail."""
    return text if len(text) <= limit else text[:limit] + "..."


def dead_letter_key(key: bytes | None) -> bytes:
    """The key a dead letter is sent with: the original, cut so it always fits a message."""
    return (key or b"")[:MAX_DEAD_LETTER_KEY_BYTES]


def dead_letter(
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes | None,
) -> dict[str, object]:
    """The dead-letter message: the reason, where the input came from, and its exact bytes.

    ``value_b64`` is null for a message without a value; of a value over
    ``MAX_DEAD_LETTER_VALUE_BYTES`` it holds the first that many bytes, ``value_truncated``
    is true and ``value_bytes`` gives the full size (the original is still at ``topic``,
    ``partition``, ``offset`` while the topic retains it).
    """

    kept = b"" if raw is None else raw[:MAX_DEAD_LETTER_VALUE_BYTES]
    text: str | None = None
    if raw is not None and len(raw) <= 4 * MAX_VALUE_TEXT:  # UTF-8: at most 4 bytes a character
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key_b64": None if key is None else base64.b64encode(dead_letter_key(key)).decode(),
        "key_truncated": key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES,
        "value_b64": None if raw is None else base64.b64encode(kept).decode(),
        "value_bytes": None if raw is None else len(raw),
        "value_truncated": raw is not None and len(kept) < len(raw),
        "value_text": text if text is not None and len(text) <= MAX_VALUE_TEXT else None,
    }
