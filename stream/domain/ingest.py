"""Raw Kafka message -> validated event, or a rejection with a reason a person can act on."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pydantic import ValidationError

from schemas.events import AdClick, AdSpend, Identify, Purchase, Referral, Refund, parse_event
from schemas.topics import TopicContract

MAX_MESSAGE_BYTES = 64 * 1024
AnyEvent = Purchase | Refund | AdClick | AdSpend | Referral | Identify


@dataclass(frozen=True)
class Rejection:
    """Why an input cannot be used. ``reason`` is a stable code, ``detail`` is prose."""

    reason: str
    detail: str


def validate(contract: TopicContract, key: bytes | None, raw: bytes) -> AnyEvent | Rejection:
    """Parse and check one message read from ``contract``'s topic."""
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
    actual = None if key is None else key.decode("utf-8", errors="replace")
    if actual != expected:
        return Rejection(
            "key_mismatch", f"message key {actual!r} is not the event's {key_field} {expected!r}"
        )
    return event


def _rejection(error: ValidationError) -> Rejection:
    problems = error.errors(include_url=False, include_input=False)
    kinds = {problem["type"] for problem in problems}
    if kinds & {"json_invalid", "json_type"}:
        return Rejection("invalid_json", problems[0]["msg"])
    if kinds & {"union_tag_invalid", "union_tag_not_found", "model_attributes_type"}:
        return Rejection("unknown_type", problems[0]["msg"])
    detail = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'][1:]) or '(event)'}: {problem['msg']}"
        for problem in problems
    )
    return Rejection("invalid_event", detail)


def dead_letter(
    rejection: Rejection, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes
) -> dict[str, object]:
    """The dead-letter message: the reason, where the input came from, and its exact bytes."""

    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key_b64": None if key is None else base64.b64encode(key).decode(),
        "value_b64": base64.b64encode(raw).decode(),
        "value_text": text if text is not None and len(text) <= 4096 else None,
    }
