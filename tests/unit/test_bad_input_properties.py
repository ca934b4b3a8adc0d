"""Bad input, generated: every defect of a message is a rejection with its precise reason.

``validate`` never raises; each family of bad input gets one stable reason code, and
where a field is at fault the detail starts with the field's name:

==========================================================  ================  ============
family                                                      reason            detail
==========================================================  ================  ============
null value; bytes that are not UTF-8 JSON (arbitrary,       ``invalid_json``  parser's
truncated, a stray byte, UTF-16, nested too deep)
JSON that is not an object (``[]``, ``1``, ``"x"``, null)   ``invalid_event`` ``(event)``
``type`` missing, unknown, or not a string                  ``unknown_type``  the type
a field of the wrong JSON type; a required field missing;   ``invalid_event`` ``<field>:``
an extra field; an identifier empty, too long or with
control characters; ``schema_version`` other than 1
money NaN / Infinity, negative, zero (amounts), huge,       ``invalid_event`` ``<field>:``
over 2 decimals, or text that is not a plain decimal
malformed currency (not three capitals)                     ``invalid_event`` ``currency:``
malformed or reserved (``all``, ``paid``) channel           ``invalid_event`` ``channel:``
timestamps before 2000 or from 2100 on, not RFC 3339        ``invalid_event`` ``<field>:``
(numbers, no offset, ``+0100``), dates likewise
cost and margin both given; spend period reversed or long   ``invalid_event`` ``(event)``
over 64 KiB (whatever else is wrong)                        ``oversized``
a valid event on a topic that does not carry its type       ``wrong_topic``
a valid event whose key is not its entity's id (none,       ``key_mismatch``
other bytes, bytes that are not UTF-8)
==========================================================  ================  ============

Two families are business rules, decided after ingest by the domain handlers:

- **A currency without a rate**: a well-formed code (three capitals) other than the
  reporting currency passes ``validate`` and is converted at the rate of the event's day;
  with no rate at all for it ``handle_purchase``, ``handle_refund``, ``handle_touch`` and
  ``handle_ad_spend`` reject it as ``unknown_currency``, with rates that only start after
  that day as ``missing_rate``, naming currency and date, and change nothing.
- **Unknown channel**: channel names are free-form — a shop may start a new channel at
  any time, so a well-formed name never seen before is a new channel, accepted. Only a
  malformed name (not ``[a-z0-9][a-z0-9_.-]{0,63}``) or a reserved one (``all``, the
  blended figures; ``paid``, every channel but ``direct``) is bad input
  (``invalid_event`` naming ``channel``).

Expected values come from the contract as documented (README "Event contracts"), not from
the models: limits and patterns are written out here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.topics import (
    AD_CLICKS,
    AD_SPEND,
    FX_RATES,
    IDENTITIES,
    PURCHASES,
    REFERRALS,
    TopicContract,
)
from stream.domain.channel import ChannelRecord, Source
from stream.domain.customer import CustomerRecord, CustomerRules, handle_purchase, handle_refund
from stream.domain.fx import FxRates
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import APPLIED, REJECTED
from stream.domain.spend import handle_ad_spend
from stream.domain.timeline import date_of_day, day_of, epoch_seconds
from stream.domain.visitor import VisitorRecord, VisitorRules, handle_touch

# -- the contract, written out -------------------------------------------------------

LIMIT_BYTES = 64 * 1024
MAX_MONEY_CENTS = 1_000_000_000 * 100
MAX_RATE = Decimal(1_000_000)
RATE_PLACES = 12
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # inclusive
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)  # exclusive
REPORTING = "USD"
CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
RESERVED_CHANNELS = ("all", "paid")  # the blended figures and those of every paid channel
CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f"

TOPIC = {
    "purchase": PURCHASES,
    "refund": PURCHASES,
    "ad_click": AD_CLICKS,
    "ad_spend": AD_SPEND,
    "referral": REFERRALS,
    "identify": IDENTITIES,
    "fx_rate": FX_RATES,
}
CONTRACTS = (PURCHASES, AD_CLICKS, REFERRALS, AD_SPEND, IDENTITIES, FX_RATES)
KEY_FIELD = {
    "purchase": "customer_id",
    "refund": "customer_id",
    "ad_click": "visitor_id",
    "ad_spend": "channel",
    "referral": "referred_visitor_id",
    "identify": "visitor_id",
    "fx_rate": "currency",
}
COMMON = {"event_id": "id", "occurred_at": "timestamp", "schema_version": "version"}
REQUIRED = {
    "purchase": {"customer_id": "id", "order_id": "id", "amount": "amount", "currency": "currency"},
    "refund": {"customer_id": "id", "order_id": "id", "amount": "amount", "currency": "currency"},
    "ad_click": {"visitor_id": "id", "channel": "channel", "cost": "cost", "currency": "currency"},
    "ad_spend": {
        "channel": "channel",
        "amount": "amount",
        "currency": "currency",
        "category": "category",
        "period_start": "date",
        "period_end": "date",
    },
    "referral": {
        "referrer_customer_id": "id",
        "referred_visitor_id": "id",
        "reward_cost": "cost",
        "currency": "currency",
    },
    "identify": {"visitor_id": "id", "customer_id": "id"},
    "fx_rate": {"currency": "currency", "rate": "rate", "effective_date": "date"},
}
OPTIONAL = {
    "purchase": {
        "cost_of_goods": "cost",
        "margin": "margin",
        "visitor_id": "id",
        "click_id": "id",
        "referral_code": "id",
    },
    "refund": {},
    "ad_click": {"campaign": "campaign"},
    "ad_spend": {},
    "referral": {"referred_customer_id": "id"},
    "identify": {},
    "fx_rate": {},
}
TYPES = tuple(TOPIC)
MONEY_KINDS = ("amount", "cost", "margin", "rate")
EXCLUSIVE = {"cost_of_goods": "margin", "margin": "cost_of_goods"}  # give one, not both


def kind_of(event_type: str, name: str) -> str:
    return {**COMMON, **REQUIRED[event_type], **OPTIONAL[event_type]}[name]


def all_fields(event_type: str) -> set[str]:
    return {"type", *COMMON, *REQUIRED[event_type], *OPTIONAL[event_type]}


# -- valid events ----------------------------------------------------------------------


UNKNOWN = object()  # a value the test does not predict


@dataclass
class Drawn:
    """An event as JSON text fragments per field, its key and the values it must parse to."""

    type: str
    fields: dict[str, str]  # field -> JSON text of its value
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def topic(self) -> TopicContract:
        return TOPIC[self.type]

    @property
    def key(self) -> bytes:
        return str(self.expect[KEY_FIELD[self.type]]).encode()

    def raw(self, padding: int = 0) -> bytes:
        body = ",".join(f"{json.dumps(name)}:{text}" for name, text in self.fields.items())
        return ("{" + " " * padding + body + "}").encode()

    def with_field(self, name: str, text: str, value: object = UNKNOWN) -> Drawn:
        """This event with ``name`` set to ``text`` (and without the field it excludes)."""
        dropped = {name, EXCLUSIVE.get(name)}
        fields = {k: v for k, v in self.fields.items() if k != EXCLUSIVE.get(name)}
        expect = {k: v for k, v in self.expect.items() if k not in dropped}
        if value is not UNKNOWN:
            expect[name] = value
        return replace(self, fields={**fields, name: text}, expect=expect)

    def without(self, name: str) -> Drawn:
        fields = {k: v for k, v in self.fields.items() if k != name}
        return replace(self, fields=fields, expect={**self.expect})


def dumps(value: object) -> st.SearchStrategy[str]:
    """JSON text of a value, ASCII-escaped or as raw UTF-8."""
    return st.booleans().map(lambda ascii_only: json.dumps(value, ensure_ascii=ascii_only))


identifiers = st.text(
    st.characters(codec="utf-8", exclude_characters=CONTROL), min_size=1, max_size=128
)
channels = st.from_regex(CHANNEL, fullmatch=True).filter(lambda name: name not in RESERVED_CHANNELS)


def cents_text(cents: int) -> st.SearchStrategy[str]:
    """Ways of writing an amount of cents in JSON: decimal strings and numbers."""
    units, rest = divmod(cents, 100)
    forms = [json.dumps(f"{units}.{rest:02d}"), json.dumps(float(f"{units}.{rest:02d}"))]
    if rest == 0:
        forms += [json.dumps(str(units)), str(units)]
    elif rest % 10 == 0:
        forms += [json.dumps(f"{units}.{rest // 10}")]
    return st.sampled_from(forms)


def money(low_cents: int) -> st.SearchStrategy[tuple[str, Decimal]]:
    return st.integers(low_cents, MAX_MONEY_CENTS).flatmap(
        lambda cents: cents_text(cents).map(lambda text: (text, Decimal(cents) / 100))
    )


@st.composite
def rates(draw: st.DrawFn) -> tuple[str, Decimal]:
    """A positive rate of at most ``RATE_PLACES`` decimals up to ``MAX_RATE``."""
    places = draw(st.integers(0, RATE_PLACES))
    value = Decimal(draw(st.integers(1, int(MAX_RATE.scaleb(places))))).scaleb(-places)
    text = format(value, "f")
    forms = [json.dumps(text)]
    if len(value.as_tuple().digits) <= 15:  # a JSON number reads back exactly
        forms.append(text)
    return draw(st.sampled_from(forms)), value


@st.composite
def margins(draw: st.DrawFn) -> tuple[str, Decimal]:
    ten_thousandths = draw(st.integers(0, 10_000))
    text = f"{ten_thousandths // 10_000}.{ten_thousandths % 10_000:04d}"
    return draw(st.sampled_from([json.dumps(text), text])), Decimal(text)


def rfc3339(moment: dt.datetime, offset_minutes: int, fraction: bool, zulu: bool) -> str:
    """``moment`` written in local time at the offset, with the offset."""
    local = moment.astimezone(dt.UTC) + dt.timedelta(minutes=offset_minutes)
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    )
    if fraction:
        text += f".{local.microsecond:06d}"
    if offset_minutes == 0 and zulu:
        return text + "Z"
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def instants(low: dt.datetime, high: dt.datetime) -> st.SearchStrategy[dt.datetime]:
    naive = st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None))
    return naive.map(lambda moment: moment.replace(tzinfo=dt.UTC))


@st.composite
def timestamps(
    draw: st.DrawFn, low: dt.datetime = EARLIEST, high: dt.datetime = LATEST
) -> tuple[str, dt.datetime]:
    """An RFC 3339 timestamp of an instant in [low, high) and the instant it denotes."""
    moment = draw(instants(low, high - dt.timedelta(microseconds=1)))
    fraction = draw(st.booleans())
    if not fraction:
        moment = moment.replace(microsecond=0)
    offset = draw(st.sampled_from([0, 60, -300, 330, 14 * 60, -14 * 60]) | st.integers(-839, 839))
    return rfc3339(moment, offset, fraction, draw(st.booleans())), moment


VALUES: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "id": identifiers.flatmap(lambda v: dumps(v).map(lambda text: (text, v))),
    "channel": channels.map(lambda v: (json.dumps(v), v)),
    "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True).map(lambda v: (json.dumps(v), v)),
    "category": st.sampled_from(["media", "salaries", "tools", "agency", "other"]).map(
        lambda v: (json.dumps(v), v)
    ),
    "campaign": st.text(st.characters(codec="utf-8"), min_size=1, max_size=128).flatmap(
        lambda v: dumps(v).map(lambda text: (text, v))
    ),
    "amount": money(1),
    "cost": money(0),
    "margin": margins(),
    "rate": rates(),
    "timestamp": timestamps().map(lambda pair: (json.dumps(pair[0]), pair[1])),
    "version": st.just(("1", 1)),
}


@st.composite
def valid_events(draw: st.DrawFn, types: tuple[str, ...] = TYPES) -> Drawn:
    event_type = draw(st.sampled_from(types))
    drawn = Drawn(event_type, {"type": json.dumps(event_type)}, {"type": event_type})
    wanted = dict(COMMON) | REQUIRED[event_type]
    for name, kind in sorted(OPTIONAL[event_type].items()):
        if draw(st.booleans()) and EXCLUSIVE.get(name) not in wanted:  # cost or margin
            wanted[name] = kind
    for name, kind in wanted.items():
        if kind == "date":
            continue
        text, value = draw(VALUES[kind])
        drawn.fields[name], drawn.expect[name] = text, value
    if event_type == "fx_rate":
        day = draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)))
        drawn.fields["effective_date"] = json.dumps(day.isoformat())
        drawn.expect["effective_date"] = day
    if event_type == "ad_spend":
        start = draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)))
        end = min(start + dt.timedelta(days=draw(st.integers(0, 365))), dt.date(2099, 12, 31))
        for name, day in (("period_start", start), ("period_end", end)):
            drawn.fields[name], drawn.expect[name] = json.dumps(day.isoformat()), day
    order = draw(st.permutations(list(drawn.fields)))
    drawn.fields = {name: drawn.fields[name] for name in order}
    return drawn


def rejected(result: object, reason: str, field_name: str | None = None) -> Rejection:
    """``result`` is a rejection for ``reason``; with ``field_name``, its detail names it."""
    assert isinstance(result, Rejection), f"accepted: {result!r}"
    assert result.reason == reason, result
    assert result.detail, result
    if field_name is not None:
        assert result.detail.startswith(f"{field_name}: "), result
        assert "; " not in result.detail, f"more than the one defect reported: {result}"
    return result


def field_of_kind(drawn: Drawn, kinds: tuple[str, ...]) -> st.SearchStrategy[str]:
    names = sorted(
        name
        for name in {*COMMON, *REQUIRED[drawn.type], *OPTIONAL[drawn.type]}
        if kind_of(drawn.type, name) in kinds
    )
    return st.sampled_from(names)


MANY = settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])


# -- valid events are accepted -----------------------------------------------------------


@MANY
@given(valid_events())
def test_valid_events_are_accepted_with_their_values(drawn: Drawn) -> None:
    event = validate(drawn.topic, drawn.key, drawn.raw())
    assert not isinstance(event, Rejection), event
    for name, value in drawn.expect.items():
        assert getattr(event, name) == value, name
    for name in set(OPTIONAL[drawn.type]) - set(drawn.expect):
        assert getattr(event, name) is None


@given(valid_events())
def test_an_event_of_exactly_the_limit_is_accepted(drawn: Drawn) -> None:
    raw = drawn.raw(padding=LIMIT_BYTES - len(drawn.raw()))
    assert len(raw) == LIMIT_BYTES
    assert not isinstance(validate(drawn.topic, drawn.key, raw), Rejection)


# -- not JSON ------------------------------------------------------------------------------


def reference_reason(raw: bytes) -> tuple[str, str | None]:
    """The reason for bytes that are not an event, by Python's own JSON parser.

    Python's parser accepts ``NaN``/``Infinity`` like the worker's; it also accepts
    unpaired surrogate escapes, which are not Unicode text (the worker refuses them).
    """
    try:
        value = json.loads(raw.decode("utf-8"))
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # unpaired surrogates fail
    except (ValueError, RecursionError):
        return "invalid_json", None
    if not isinstance(value, dict):
        return "invalid_event", "(event)"
    if not isinstance(value.get("type"), str) or value["type"] not in TYPES:
        return "unknown_type", None
    return "invalid_event", None  # an event type with fields missing


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
SNIPPETS = [
    b"",
    b" ",
    b"{",
    b"}",
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"0",
    b"-0",
    b"01",
    b"1.",
    b".5",
    b"1e999",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"nan",
    b'"\\ud800"',
    b'{"type": "\\udfff"}',
    b"\xef\xbb\xbf{}",
    b'{"a":1,}',
    b"{} {}",
    b'{"type":"purchase"}\x00',
    b'{"type": null}',
    b'{"type": ["purchase"]}',
    b'{"type": "Purchase"}',
    b'{"type": "purchase"}',
]


@MANY
@given(
    st.binary(max_size=300)
    | st.sampled_from(SNIPPETS)
    | json_values.map(lambda value: json.dumps(value).encode())
)
@example(b"[" * 300 + b"]" * 300)  # nested deeper than the parser goes
def test_arbitrary_bytes_are_rejected_with_the_reason_of_what_they_are(raw: bytes) -> None:
    deep = raw.startswith(b"[" * 300)
    reason, field_name = ("invalid_json", None) if deep else reference_reason(raw)
    for contract in CONTRACTS:
        rejected(validate(contract, None, raw), reason, field_name)


@given(valid_events(), st.data())
def test_a_truncated_event_is_not_json(drawn: Drawn, data: st.DataObject) -> None:
    raw = drawn.raw()
    cut = data.draw(st.integers(0, len(raw) - 1))
    rejected(validate(drawn.topic, drawn.key, raw[:cut]), "invalid_json")


@given(valid_events(), st.data())
def test_bytes_that_are_not_utf8_are_not_json(drawn: Drawn, data: st.DataObject) -> None:
    raw = drawn.raw()
    position = data.draw(st.integers(0, len(raw)))
    stray = data.draw(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xed\xa0\x80"]))
    rejected(
        validate(drawn.topic, drawn.key, raw[:position] + stray + raw[position:]), "invalid_json"
    )
    utf16 = raw.decode().encode(data.draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"])))
    rejected(validate(drawn.topic, drawn.key, utf16), "invalid_json")


@given(st.sampled_from(CONTRACTS), st.none() | st.binary(max_size=20))
def test_a_message_without_a_value_is_not_json(contract: TopicContract, key: bytes | None) -> None:
    rejected(validate(contract, key, None), "invalid_json")


# -- type --------------------------------------------------------------------------------


@MANY
@given(valid_events(), st.data())
def test_a_missing_or_unknown_type_is_unknown_type(drawn: Drawn, data: st.DataObject) -> None:
    not_a_type = st.one_of(
        st.text().filter(lambda t: t not in TYPES).map(json.dumps),
        st.sampled_from(["null", "1", "true", "[]", "{}", '"Purchase"', '"purchase "']),
        st.sampled_from(TYPES).map(lambda t: json.dumps([t])),
    )
    bad = data.draw(
        st.just(drawn.without("type")) | not_a_type.map(lambda t: drawn.with_field("type", t))
    )
    result = rejected(validate(drawn.topic, drawn.key, bad.raw()), "unknown_type")
    assert "type" in result.detail


# -- fields --------------------------------------------------------------------------------

JSON_OF = {
    "string": st.text(max_size=20).map(json.dumps),
    "number": (st.integers() | st.floats(allow_nan=False, allow_infinity=False)).map(json.dumps),
    "bool": st.sampled_from(["true", "false"]),
    "null": st.just("null"),
    "array": st.lists(st.integers(), max_size=3).map(json.dumps),
    "object": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3).map(json.dumps),
}
ACCEPTED_JSON = {  # the JSON types a field of each kind accepts
    "id": {"string"},
    "channel": {"string"},
    "currency": {"string"},
    "category": {"string"},
    "campaign": {"string"},
    "timestamp": {"string"},  # never a number of seconds
    "date": {"string"},
    "amount": {"string", "number"},
    "cost": {"string", "number"},
    "margin": {"string", "number"},
    "rate": {"string", "number"},
    "version": {"integer"},
}


@MANY
@given(valid_events(), st.data())
def test_a_field_of_the_wrong_json_type_is_named(drawn: Drawn, data: st.DataObject) -> None:
    name = data.draw(field_of_kind(drawn, tuple(ACCEPTED_JSON)))
    kind = kind_of(drawn.type, name)
    wrong = sorted(
        set(JSON_OF) - ACCEPTED_JSON[kind] - ({"null"} if name in OPTIONAL[drawn.type] else set())
    )
    text = data.draw(st.sampled_from(wrong).flatmap(lambda json_type: JSON_OF[json_type]))
    if kind == "version":
        text = data.draw(st.sampled_from(['"1"', "1.0", "true", "null", "[1]", '{"v": 1}']))
    bad = drawn.with_field(name, text)
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", name)


@MANY
@given(valid_events(), st.data())
def test_a_missing_required_field_is_named(drawn: Drawn, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted({*COMMON, *REQUIRED[drawn.type]})))
    result = rejected(
        validate(drawn.topic, drawn.key, drawn.without(name).raw()), "invalid_event", name
    )
    assert result.detail == f"{name}: Field required"


@MANY
@given(valid_events(), st.data())
def test_an_extra_field_is_named(drawn: Drawn, data: st.DataObject) -> None:
    name = data.draw(
        st.text(max_size=64).filter(lambda n: n not in all_fields(drawn.type) and ";" not in n)
    )
    value = data.draw(
        st.sampled_from(sorted(JSON_OF)).flatmap(lambda json_type: JSON_OF[json_type])
    )
    result = rejected(
        validate(drawn.topic, drawn.key, drawn.with_field(name, value).raw()),
        "invalid_event",
        name or '""',
    )
    assert "Extra inputs are not permitted" in result.detail


@MANY
@given(valid_events(), st.data())
def test_a_bad_identifier_is_named(drawn: Drawn, data: st.DataObject) -> None:
    name = data.draw(field_of_kind(drawn, ("id",)))
    bad = data.draw(
        st.one_of(
            st.just(""),
            st.text(st.characters(codec="utf-8"), min_size=129, max_size=300),
            st.tuples(st.text(max_size=5), st.sampled_from(CONTROL), st.text(max_size=5)).map(
                "".join
            ),
        )
    )
    result = validate(drawn.topic, drawn.key, drawn.with_field(name, json.dumps(bad)).raw())
    rejected(result, "invalid_event", name)


@given(valid_events(), st.data())
def test_a_schema_version_other_than_1_is_named(drawn: Drawn, data: st.DataObject) -> None:
    version = data.draw(st.integers().filter(lambda v: v != 1).map(str))
    bad = drawn.with_field("schema_version", version)
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", "schema_version")


# -- money -----------------------------------------------------------------------------------


def decimal_text(value: Decimal) -> st.SearchStrategy[str]:
    return st.sampled_from([json.dumps(format(value, "f")), format(value, "f")])


NON_FINITE = st.sampled_from(
    [
        '"NaN"',
        '"nan"',
        '"sNaN"',
        '"Infinity"',
        '"-Infinity"',
        '"inf"',
        '"-inf"',
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
    ]
)
NOT_PLAIN = st.sampled_from(
    [
        '"1_000"',
        '" 10"',
        '"10 "',
        '"1,50"',
        '""',
        '"ten"',
        '"0x10"',
        '"\\u0661\\u0660"',  # Arabic-Indic digits: Python's Decimal reads them as 10
        '"+1"',
        '".5"',
        '"1."',
        '"1e3"',
        '"1E+2"',
        '"$10"',
        '"-0"',
    ]
)
NEGATIVE = st.integers(max_value=-1).map(lambda cents: Decimal(cents) / 100).flatmap(decimal_text)
TOO_PRECISE = st.tuples(
    st.integers(1, 10**9).filter(lambda n: n % 10 != 0), st.integers(3, 8)
).flatmap(lambda pair: decimal_text(Decimal(pair[0]).scaleb(-pair[1])))
BAD_MONEY = {
    "amount": st.one_of(
        NON_FINITE,
        NOT_PLAIN,
        NEGATIVE,
        TOO_PRECISE,
        st.sampled_from(['"0"', '"0.00"', "0", "0.0", "-0.0"]),
        st.integers(MAX_MONEY_CENTS + 1).map(lambda c: Decimal(c) / 100).flatmap(decimal_text),
    ),
    "cost": st.one_of(
        NON_FINITE,
        NOT_PLAIN,
        NEGATIVE,
        TOO_PRECISE,
        st.integers(MAX_MONEY_CENTS + 1).map(lambda c: Decimal(c) / 100).flatmap(decimal_text),
    ),
    "margin": st.one_of(
        NON_FINITE,
        NOT_PLAIN,
        NEGATIVE,
        st.decimals(
            min_value=Decimal("1.0001"), allow_nan=False, allow_infinity=False, places=4
        ).flatmap(decimal_text),
    ),
    "rate": st.one_of(
        NON_FINITE,
        NOT_PLAIN,
        NEGATIVE,
        st.sampled_from(['"0"', '"0.000"', "0", "0.0", "-0.0"]),
        st.tuples(st.integers(1, 10**9).filter(lambda n: n % 10 != 0), st.integers(13, 16))
        .map(lambda pair: Decimal(pair[0]).scaleb(-pair[1]))
        .flatmap(decimal_text),
        st.integers(int(MAX_RATE) * 100 + 1).map(lambda c: Decimal(c) / 100).flatmap(decimal_text),
    ),
}


@MANY
@given(
    valid_events(("purchase", "refund", "ad_click", "ad_spend", "referral", "fx_rate")), st.data()
)
def test_bad_money_is_named(drawn: Drawn, data: st.DataObject) -> None:
    name = data.draw(field_of_kind(drawn, MONEY_KINDS))
    text = data.draw(BAD_MONEY[kind_of(drawn.type, name)])
    bad = drawn.with_field(name, text)
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", name)


def test_trailing_zeros_beyond_cents_are_more_than_2_decimals() -> None:
    """``"1.000"`` is a whole amount written with 3 decimals: the contract says at most 2."""
    drawn = Drawn(
        "refund",
        {
            "type": '"refund"',
            "event_id": '"e1"',
            "occurred_at": '"2026-03-01T10:00:00Z"',
            "schema_version": "1",
            "customer_id": '"c1"',
            "order_id": '"o1"',
            "amount": '"1.000"',
            "currency": '"USD"',
        },
        {"customer_id": "c1"},
    )
    result = rejected(validate(PURCHASES, b"c1", drawn.raw()), "invalid_event", "amount")
    assert "2 decimal places" in result.detail


# -- currency and channel ------------------------------------------------------------------


@MANY
@given(
    valid_events(("purchase", "refund", "ad_click", "ad_spend", "referral", "fx_rate")), st.data()
)
def test_a_malformed_currency_is_named(drawn: Drawn, data: st.DataObject) -> None:
    code = data.draw(st.text(max_size=6).filter(lambda c: re.fullmatch(r"[A-Z]{3}", c) is None))
    bad = drawn.with_field("currency", json.dumps(code))
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", "currency")


MALFORMED_CHANNELS = st.one_of(
    st.text(max_size=70).filter(lambda c: CHANNEL.fullmatch(c) is None),
    st.sampled_from(["Search", "search\n", "-search", "_x", ".x", "sea rch", "séarch", "a" * 65]),
)


@MANY
@given(
    valid_events(("ad_click", "ad_spend")),
    MALFORMED_CHANNELS | st.sampled_from(RESERVED_CHANNELS),
)
def test_a_malformed_or_reserved_channel_is_named(drawn: Drawn, channel: str) -> None:
    bad = drawn.with_field("channel", json.dumps(channel))
    key = channel.encode() if drawn.type == "ad_spend" else drawn.key
    result = rejected(validate(drawn.topic, key, bad.raw()), "invalid_event", "channel")
    if channel in RESERVED_CHANNELS:
        assert "reserved" in result.detail


# -- time ------------------------------------------------------------------------------------

YEAR_1 = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
YEAR_9999 = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)
OUT_OF_RANGE_TIMES = timestamps(YEAR_1, EARLIEST) | timestamps(LATEST, YEAR_9999)
NOT_RFC3339 = st.one_of(
    st.integers(0, 4_102_444_800_000).map(str),  # seconds or milliseconds since the epoch
    st.floats(0, 4.1e9).map(json.dumps),
    st.integers(0, 4_102_444_800).map(lambda s: json.dumps(str(s))),
    st.sampled_from(
        [
            '"2026-03-01T10:00:00"',  # no offset
            '"2026-03-01T10:00:00+0100"',
            '"2026-03-01T10:00Z"',
            '"2026-03-01T10:00:00,5Z"',
            '"2026-03-01"',
            '"20260301T100000Z"',
            '"2026-02-30T10:00:00Z"',
            '"2026-03-01T24:00:01Z"',
            '"2026-03-01T10:00:00+24:00"',
            '"yesterday"',
            '""',
        ]
    ),
    st.text().filter(lambda s: re.match(r"[0-9]{4}-", s) is None).map(json.dumps),
)


@MANY
@given(valid_events(), OUT_OF_RANGE_TIMES)
def test_ancient_and_far_future_event_times_are_named(
    drawn: Drawn, bad: tuple[str, dt.datetime]
) -> None:
    text, moment = bad
    assert not EARLIEST <= moment < LATEST
    result = rejected(
        validate(drawn.topic, drawn.key, drawn.with_field("occurred_at", json.dumps(text)).raw()),
        "invalid_event",
        "occurred_at",
    )
    assert "outside 2000-01-01" in result.detail


@example(EARLIEST - dt.timedelta(microseconds=1))
@example(LATEST - dt.timedelta(microseconds=1))
@example(LATEST)
@given(st.just(EARLIEST))
def test_the_bounds_of_event_time(moment: dt.datetime) -> None:
    drawn = Drawn(
        "identify",
        {
            "type": '"identify"',
            "event_id": '"e1"',
            "occurred_at": json.dumps(rfc3339(moment, 0, True, True)),
            "schema_version": "1",
            "visitor_id": '"v1"',
            "customer_id": '"c1"',
        },
        {"visitor_id": "v1"},
    )
    result = validate(IDENTITIES, b"v1", drawn.raw())
    if EARLIEST <= moment < LATEST:
        assert not isinstance(result, Rejection), result
    else:
        rejected(result, "invalid_event", "occurred_at")


@MANY
@given(valid_events(), NOT_RFC3339)
def test_an_event_time_that_is_not_rfc3339_is_named(drawn: Drawn, text: str) -> None:
    bad = drawn.with_field("occurred_at", text)
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", "occurred_at")


BAD_DATES = st.one_of(
    st.dates(dt.date(1, 1, 1), dt.date(1999, 12, 31)).map(lambda d: json.dumps(d.isoformat())),
    st.dates(dt.date(2100, 1, 1)).map(lambda d: json.dumps(d.isoformat())),
    st.integers(0, 4_102_444_800).map(str),
    st.sampled_from(
        [
            '"2026-03-01T00:00:00Z"',
            '"2026-03-01T00:00:00"',
            '"20260301"',
            '"2026-3-1"',
            '"2026-02-30"',
            '"01.03.2026"',
            '""',
        ]
    ),
)


@MANY
@given(valid_events(("ad_spend", "fx_rate")), st.data(), BAD_DATES)
def test_a_bad_date_is_named(drawn: Drawn, data: st.DataObject, text: str) -> None:
    name = data.draw(field_of_kind(drawn, ("date",)))
    bad = drawn.with_field(name, text)
    rejected(validate(drawn.topic, drawn.key, bad.raw()), "invalid_event", name)


@given(valid_events(("ad_spend",)), st.data())
def test_a_reversed_or_overlong_spend_period_is_named(drawn: Drawn, data: st.DataObject) -> None:
    start = data.draw(st.dates(dt.date(2010, 1, 1), dt.date(2098, 1, 1)))
    days = data.draw(st.integers(-3000, -1) | st.integers(366, 700))
    bad = drawn.with_field("period_start", json.dumps(start.isoformat())).with_field(
        "period_end", json.dumps((start + dt.timedelta(days=days)).isoformat())
    )
    result = rejected(validate(AD_SPEND, drawn.key, bad.raw()), "invalid_event", "(event)")
    assert ("before period_start" if days < 0 else "longer than") in result.detail


@given(valid_events(("purchase",)), VALUES["cost"], margins())
def test_cost_of_goods_and_margin_together_are_named(
    drawn: Drawn, cost: tuple[str, Decimal], margin: tuple[str, Decimal]
) -> None:
    bad = replace(drawn, fields={**drawn.fields, "cost_of_goods": cost[0], "margin": margin[0]})
    result = rejected(validate(PURCHASES, drawn.key, bad.raw()), "invalid_event", "(event)")
    assert "not both" in result.detail


# -- size, topic and key -----------------------------------------------------------------------


@given(valid_events(), st.integers(1, 200_000), st.none() | st.binary(max_size=20))
def test_oversized_messages_are_oversized_whatever_else(
    drawn: Drawn, over: int, key: bytes | None
) -> None:
    raw = drawn.raw(padding=LIMIT_BYTES - len(drawn.raw()) + over)
    result = rejected(validate(drawn.topic, key, raw), "oversized")
    assert str(len(raw)) in result.detail
    garbage = b"\xff" * (LIMIT_BYTES + over)
    rejected(validate(drawn.topic, key, garbage), "oversized")


@MANY
@given(valid_events(), st.data())
def test_an_event_on_a_topic_that_does_not_carry_it_is_wrong_topic(
    drawn: Drawn, data: st.DataObject
) -> None:
    contract = data.draw(st.sampled_from([c for c in CONTRACTS if c is not drawn.topic]))
    key = data.draw(st.none() | st.just(drawn.key) | st.binary(max_size=20))
    result = rejected(validate(contract, key, drawn.raw()), "wrong_topic")
    assert drawn.type in result.detail and contract.name in result.detail


@MANY
@given(valid_events(), st.data())
def test_a_key_that_is_not_the_entity_is_key_mismatch(drawn: Drawn, data: st.DataObject) -> None:
    right = drawn.key
    key = data.draw(
        st.one_of(
            st.none(),
            st.binary(max_size=40),
            st.sampled_from(
                [
                    b"",
                    right + b" ",
                    b" " + right,
                    right.upper(),
                    right.lower(),
                    b"\xff" + right,
                    right.decode().encode("utf-16"),
                    right + b"\x00",
                ]
            ),
            st.sampled_from(sorted(drawn.expect.items())).map(lambda item: str(item[1]).encode()),
        ).filter(lambda k: k != right)
    )
    result = rejected(validate(drawn.topic, key, drawn.raw()), "key_mismatch")
    assert KEY_FIELD[drawn.type] in result.detail


def test_a_key_that_only_decodes_to_the_entity_is_key_mismatch() -> None:
    """Bytes that are not UTF-8 never equal an id, even one that is U+FFFD."""
    drawn = Drawn(
        "identify",
        {
            "type": '"identify"',
            "event_id": '"e1"',
            "occurred_at": '"2026-03-01T10:00:00Z"',
            "schema_version": "1",
            "visitor_id": json.dumps("\ufffd"),
            "customer_id": '"c1"',
        },
        {"visitor_id": "\ufffd"},
    )
    assert not isinstance(validate(IDENTITIES, "\ufffd".encode(), drawn.raw()), Rejection)
    result = rejected(validate(IDENTITIES, b"\xff", drawn.raw()), "key_mismatch")
    assert "not UTF-8" in result.detail


# -- business rules after ingest: currencies without a rate, new channels ---------------------

other_currencies = st.from_regex(r"[A-Z]{3}", fullmatch=True).filter(lambda c: c != REPORTING)


def parsed(drawn: Drawn) -> Any:
    event = validate(drawn.topic, drawn.key, drawn.raw())
    assert not isinstance(event, Rejection), event
    return event


def with_currency(drawn: Drawn, currency: str) -> Drawn:
    return drawn.with_field("currency", json.dumps(currency), currency)


def rates(currency: str, first_day: int | None) -> FxRates:
    """``currency`` worth 1.5 from ``first_day`` on; no rate at all when it is None."""
    return FxRates(
        REPORTING, {} if first_day is None else {currency: [(first_day, Decimal("1.5"))]}
    )


def event_day(event: Any) -> int:
    return day_of(epoch_seconds(event.occurred_at))


def customer_with_an_order(event: Any) -> CustomerRecord:
    """A customer with an order in the event's currency: for a refund, the order it
    takes back (paid as much); for a purchase, another order."""
    if event.type == "refund":
        order_id = event.order_id
    else:
        order_id = "first" if event.order_id != "first" else "second"
    first = Drawn(
        "purchase",
        {
            "type": '"purchase"',
            "event_id": '"first"',
            "occurred_at": '"2026-03-01T10:00:00Z"',
            "schema_version": "1",
            "customer_id": json.dumps(event.customer_id),
            "order_id": json.dumps(order_id),
            "amount": json.dumps(str(event.amount)),
            "currency": json.dumps(event.currency),
        },
        {"customer_id": event.customer_id},
    )
    record = CustomerRecord(event.customer_id)
    rules = CustomerRules(rates(event.currency, 0))
    outcome = handle_purchase(record, parsed(first), Source("purchases", 0, 0), rules)
    assert outcome.status == APPLIED
    return record


def assert_unconvertible(outcome: Any, reason: str, currency: str, event: Any) -> None:
    assert outcome.status == REJECTED
    assert outcome.reason == reason
    assert currency in outcome.detail
    assert str(date_of_day(event_day(event))) in outcome.detail
    assert (outcome.deltas, outcome.messages) == ([], [])


# A rate that starts the day after the event: ``missing_rate``; none at all: ``unknown_currency``.
AFTER_THE_EVENT = st.sampled_from([(1, "missing_rate"), (None, "unknown_currency")])


@MANY
@given(valid_events(("purchase", "refund")), other_currencies, AFTER_THE_EVENT)
def test_a_customer_event_without_a_rate_on_its_day_is_rejected_and_changes_nothing(
    drawn: Drawn, currency: str, rate_from: tuple[int | None, str]
) -> None:
    event = parsed(with_currency(drawn, currency))
    record = customer_with_an_order(event)
    before = record.to_json()
    after, reason = rate_from
    fx = rates(currency, None if after is None else event_day(event) + after)
    handle = handle_purchase if drawn.type == "purchase" else handle_refund
    outcome = handle(record, event, Source("purchases", 0, 1), CustomerRules(fx))
    assert_unconvertible(outcome, reason, currency, event)
    assert record.to_json() == before


@MANY
@given(valid_events(("ad_click", "referral")), other_currencies, AFTER_THE_EVENT)
def test_a_touch_without_a_rate_on_its_day_is_rejected_and_changes_nothing(
    drawn: Drawn, currency: str, rate_from: tuple[int | None, str]
) -> None:
    event = parsed(with_currency(drawn, currency))
    record = VisitorRecord(drawn.key.decode())
    after, reason = rate_from
    fx = rates(currency, None if after is None else event_day(event) + after)
    outcome = handle_touch(record, event, Source(drawn.topic.name, 0, 1), VisitorRules(fx))
    assert_unconvertible(outcome, reason, currency, event)
    assert record.to_json() == VisitorRecord(drawn.key.decode()).to_json()


@MANY
@given(valid_events(("ad_spend",)), other_currencies, AFTER_THE_EVENT)
def test_spend_without_a_rate_on_its_day_is_rejected_and_changes_nothing(
    drawn: Drawn, currency: str, rate_from: tuple[int | None, str]
) -> None:
    event = parsed(with_currency(drawn, currency))
    record = ChannelRecord(event.channel)
    after, reason = rate_from
    fx = rates(currency, None if after is None else event_day(event) + after)
    outcome = handle_ad_spend(record, event, Source("ad-spend", 0, 1), fx)
    assert_unconvertible(outcome, reason, currency, event)
    assert record.to_json() == ChannelRecord(event.channel).to_json()


@MANY
@given(valid_events(("ad_click", "ad_spend")), channels)
def test_a_well_formed_channel_never_seen_before_is_a_new_channel(
    drawn: Drawn, channel: str
) -> None:
    drawn = with_currency(drawn.with_field("channel", json.dumps(channel), channel), REPORTING)
    event = parsed(drawn)
    # its spend also counts in the blended figures and, unless it is direct, the paid ones
    blended = ["all"] if channel == "direct" else ["all", "paid"]
    if drawn.type == "ad_spend":
        own = ChannelRecord(channel)
        outcome = handle_ad_spend(own, event, Source("ad-spend", 0, 1), FxRates(REPORTING))
        cents = int(event.amount * 100)
        assert sum(b.spend_cents for b in own.buckets.values()) == cents
        assert [d.channel for d in outcome.deltas] == blended
        for delta in outcome.deltas:
            assert delta.buckets == own.buckets
    else:
        visitor = VisitorRecord(drawn.key.decode())
        outcome = handle_touch(
            visitor, event, Source("ad-clicks", 0, 1), VisitorRules(FxRates(REPORTING))
        )
        channels_spent = [d.channel for d in outcome.deltas]
        assert channels_spent == ([channel, *blended] if event.cost else [])
    assert outcome.status == APPLIED


@given(valid_events(("refund",)))
def test_a_refund_of_an_order_never_bought_is_unknown_order(drawn: Drawn) -> None:
    event = parsed(with_currency(drawn, REPORTING))
    record = CustomerRecord(event.customer_id)
    rules = CustomerRules(FxRates(REPORTING))
    outcome = handle_refund(record, event, Source("purchases", 0, 1), rules)
    assert (outcome.status, outcome.reason) == (REJECTED, "unknown_order")
    assert event.order_id in outcome.detail
    assert record.to_json() == CustomerRecord(event.customer_id).to_json()
