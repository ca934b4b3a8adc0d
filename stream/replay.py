"""``ltvcac replay``: JSON Lines history -> the messages a shop's producer would send.

Pure: the caller hands in the file's lines and gets a `Plan` back, the (topic, key,
value) of every good line in file order and an error per defect of every bad one.
Each line is checked with the worker's own rules (`stream.domain.ingest.validate` on
the topic and key the event belongs to; no rate for the reporting currency), so what
replay accepts is what the worker applies, but for what depends on state: a refund's
order, and exchange rates (the rates topic is not read here). Publishing lives in
``stream.cli``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.events import FxRate, parse_event
from schemas.topics import SOURCE_TOPICS, topic_for
from stream.domain.fx import reporting_currency_rate
from stream.domain.ingest import MAX_MESSAGE_BYTES, Rejection, validate
from stream.errors import LtvCacError

LINE = "(line)"  # the line is not a JSON object: not UTF-8, invalid JSON, too large
EVENT = "(event)"  # a JSON object that is no event, or a rule across several fields
ERRORS_SHOWN = 20
EXIT_OK = 0  # every line published (or, with --dry-run, valid)
EXIT_BAD_LINES = 1  # a line was bad: skipped (default), or nothing published (--strict)
EXIT_USAGE = 2  # wrong arguments or settings, or an unreadable file
EXIT_KAFKA = 3  # Kafka unreachable, a topic missing, or a failure part-way (see the message)
EXIT_INTERRUPTED = 130
_BOM = b"\xef\xbb\xbf"
EVENT_TYPES = frozenset(t for contract in SOURCE_TOPICS for t in contract.event_keys)


class ReplayError(LtvCacError):
    """A replay could not publish its events; the message says what was published."""


class BrokerUnavailable(ReplayError):
    """Kafka could not be reached or used before anything was published."""


class PublishFailed(ReplayError):
    """Kafka failed part-way; ``published`` events were acknowledged before it did."""

    def __init__(self, message: str, published: int) -> None:
        super().__init__(message)
        self.published = published


@dataclass(frozen=True)
class Record:
    """One message to publish: physical topic, key and the line's exact bytes."""

    line: int
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class LineError:
    """One defect of one line; ``field`` is a field path, `LINE` or `EVENT`."""

    line: int
    field: str
    message: str

    def render(self, source: str) -> str:
        return f"{source}:{self.line}: {self.field}: {self.message}"


@dataclass
class Delivery:
    """How many of ``total`` records Kafka has acknowledged so far."""

    total: int
    published: int = 0


@dataclass
class Plan:
    """What a file replays to. In strict mode ``records`` is empty once a line is bad."""

    records: list[Record] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    bad_lines: int = 0
    lines_read: int = 0
    stopped_at: int | None = None  # strict mode: the bad line that stopped the plan

    @property
    def ok(self) -> bool:
        return self.bad_lines == 0


def check_line(
    raw: bytes, line: int, topic_prefix: str = "", reporting_currency: str | None = None
) -> Record | list[LineError]:
    """The record for one line (without its line terminator), or what is wrong with it."""
    if len(raw) > MAX_MESSAGE_BYTES:  # the worker's first check too, before any parsing
        return [LineError(line, LINE, f"{len(raw)} bytes is over the {MAX_MESSAGE_BYTES} limit")]
    if raw.startswith(_BOM):
        return [LineError(line, LINE, "starts with a UTF-8 byte order mark; save without BOM")]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return [LineError(line, LINE, f"not UTF-8 text (invalid byte at column {error.start + 1})")]
    try:
        event = parse_event(raw)
    except ValidationError as error:
        return [_line_error(line, problem) for problem in error.errors(include_url=False)]
    contract = topic_for(event.type)
    key = str(getattr(event, contract.event_keys[event.type])).encode()
    result = validate(contract, key, raw)
    if isinstance(result, Rejection):  # not expected: topic and key come from the event
        return [LineError(line, EVENT, result.detail)]
    if (
        reporting_currency is not None
        and isinstance(result, FxRate)
        and (problem := reporting_currency_rate(result.currency, reporting_currency))
    ):
        return [LineError(line, "currency", problem)]
    return Record(line, topic_prefix + contract.name, key, raw)


def build_plan(
    lines: Iterable[bytes],
    *,
    topic_prefix: str = "",
    reporting_currency: str | None = None,
    strict: bool = False,
) -> Plan:
    """Check every line (as read from a binary file, terminators included).

    Blank lines are skipped. Default: bad lines are collected and left out. Strict:
    the plan stops at the first bad line and holds no records.
    """
    plan = Plan()
    for number, chunk in enumerate(lines, start=1):
        plan.lines_read = number
        raw = chunk.removesuffix(b"\n").removesuffix(b"\r")
        if not raw.strip():
            continue
        checked = check_line(raw, number, topic_prefix, reporting_currency)
        if isinstance(checked, Record):
            plan.records.append(checked)
            continue
        plan.errors.extend(checked)
        plan.bad_lines += 1
        if strict:
            plan.records.clear()
            plan.stopped_at = number
            break
    return plan


def topic_counts(records: Iterable[Record]) -> str:
    """``ad-clicks 2, purchases 5``: records per topic, by topic name."""
    counts = Counter(record.topic for record in records)
    return ", ".join(f"{topic} {count}" for topic, count in sorted(counts.items()))


def error_lines(source: str, plan: Plan, limit: int = ERRORS_SHOWN) -> list[str]:
    """The first ``limit`` errors as ``FILE:LINE: FIELD: message``, then how many more."""
    shown = [error.render(source) for error in plan.errors[:limit]]
    if len(plan.errors) > limit:
        more = len(plan.errors) - limit
        shown.append(f"... and {more} more {_plural(more, 'error')}")
    return shown


def summary(source: str, plan: Plan, delivery: Delivery) -> str:
    """The last line of a default-mode replay."""
    published = delivery.published
    per_topic = topic_counts(plan.records)
    return (
        f"{source}: published {published} {_plural(published, 'event')}"
        + (f" ({per_topic})" if per_topic else "")
        + f", skipped {plan.bad_lines} bad {_plural(plan.bad_lines, 'line')}"
    )


def dry_run_summary(source: str, plan: Plan) -> str:
    valid = len(plan.records)
    per_topic = topic_counts(plan.records)
    return (
        f"{source}: dry run: {valid} {_plural(valid, 'event')} would be published"
        + (f" ({per_topic})" if per_topic else "")
        + f", {plan.bad_lines} bad {_plural(plan.bad_lines, 'line')}; nothing was published"
    )


def strict_stop(source: str, plan: Plan) -> str:
    return (
        f"{source}:{plan.stopped_at}: stopped at the first bad line (--strict); "
        "nothing was published"
    )


def missing_topics(records: Iterable[Record], existing: Iterable[str]) -> list[str]:
    """Topics the records go to that the cluster does not have, by name."""
    return sorted({record.topic for record in records} - set(existing))


def missing_topics_message(missing: list[str], topic_prefix: str) -> str:
    """Replay never lets a producer auto-create a topic with the broker's partition count."""
    return (
        f"{_plural(len(missing), 'topic')} {', '.join(missing)} not found on Kafka; "
        f"check LTVCAC_TOPIC_PREFIX (now {topic_prefix!r}), or start `ltvcac worker` once: "
        "it creates its topics with LTVCAC_TOPIC_PARTITIONS partitions. Nothing was published."
    )


_RERUN_IS_SAFE = (
    "Re-running the same file is safe: the service de-duplicates by event_id "
    "(purchases by order_id), so events already published are not counted twice."
)


def failed_midway(delivery: Delivery, cause: str) -> str:
    """What to tell the operator when Kafka fails after some events may be published."""
    return (
        f"Kafka failed after {delivery.published} of {delivery.total} "
        f"{_plural(delivery.total, 'event')} were published ({cause}). {_RERUN_IS_SAFE}"
    )


def interrupted(delivery: Delivery) -> str:
    return (
        f"interrupted: {delivery.published} of {delivery.total} "
        f"{_plural(delivery.total, 'event')} were confirmed published, some more may have "
        f"been. {_RERUN_IS_SAFE}"
    )


def _line_error(line: int, problem: ErrorDetails) -> LineError:
    kind = problem["type"]
    if kind == "json_invalid":
        return LineError(line, LINE, problem["msg"])
    if kind in {"dict_type", "json_type", "model_attributes_type"}:
        return LineError(line, LINE, "not a JSON object")
    ctx = problem.get("ctx") or {}
    if kind == "union_tag_not_found":
        return LineError(line, EVENT, f"no event type: field 'type' is missing; {_expected()}")
    if kind == "union_tag_invalid":
        return LineError(line, EVENT, f"unknown event type {ctx.get('tag')!r}; {_expected()}")
    path = ".".join(str(part) for part in problem["loc"][1:])  # [0] is the event type
    return LineError(line, path or EVENT, problem["msg"])


def _expected() -> str:
    return "expected one of " + ", ".join(sorted(EVENT_TYPES))


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
