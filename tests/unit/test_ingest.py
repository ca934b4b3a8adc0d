"""Validation of raw messages: every defect gets a stable reason code."""

import json

import pytest

from schemas.topics import AD_CLICKS, AD_SPEND, PURCHASES
from stream.domain.ingest import MAX_MESSAGE_BYTES, Rejection, dead_letter, validate
from tests.unit.events import event_json

GOOD = event_json("purchase", customer_id="c1", order_id="o1", amount="10.00", currency="USD")


def raw(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def without(field: str) -> bytes:
    return json.dumps({k: v for k, v in GOOD.items() if k != field}).encode()


@pytest.mark.parametrize(
    ("message", "reason", "mentions"),
    [
        (b"{not json", "invalid_json", "JSON"),
        (b"\xff\xfe\x00", "invalid_json", "JSON"),
        (b'{"no": "type"}', "unknown_type", "type"),
        (raw(type="teleport"), "unknown_type", "teleport"),
        (without("amount"), "invalid_event", "amount: Field required"),
        (raw(amount="-5.00"), "invalid_event", "amount"),
        (raw(amount="NaN"), "invalid_event", "amount"),
        (raw(amount="1e12"), "invalid_event", "amount"),
        (raw(amount="1.234"), "invalid_event", "2 decimal places"),
        (raw(customer_id=42), "invalid_event", "customer_id"),
        (raw(occurred_at="2026-03-01T10:00:00"), "invalid_event", "timezone"),
        (raw(currency="usd"), "invalid_event", "currency"),
        (raw(surprise=1), "invalid_event", "surprise"),
        (raw(schema_version=2), "invalid_event", "schema_version"),
        (raw(padding="x" * MAX_MESSAGE_BYTES), "oversized", "limit"),
        (b"", "invalid_json", "JSON"),
        (b"[1, 2]", "invalid_event", "(event): Input should be an object"),
        (raw(type=None), "unknown_type", "type 'None'"),
        (raw(occurred_at=1772359200), "invalid_event", "occurred_at: Value error, not an RFC 3339"),
        (raw(occurred_at="1772359200"), "invalid_event", "occurred_at: Value error, not an RFC"),
        (raw(occurred_at="2026-03-01T10:00:00+0100"), "invalid_event", "occurred_at"),
        (raw(occurred_at="1999-12-31T23:59:59Z"), "invalid_event", "outside 2000-01-01"),
        (raw(occurred_at="2100-01-01T00:00:00Z"), "invalid_event", "outside 2000-01-01"),
        (raw(occurred_at="0001-01-01T00:00:00+14:00"), "invalid_event", "occurred_at"),
        (raw(amount="1_000"), "invalid_event", "amount: Value error, not a plain decimal"),
        (raw(amount=" 10"), "invalid_event", "amount: Value error, not a plain decimal"),
        (raw(amount="\u0661\u0660"), "invalid_event", "amount: Value error, not a plain"),
        (raw(amount="1E+2"), "invalid_event", "amount: Value error, not a plain decimal"),
        (raw(amount=True), "invalid_event", "amount"),
        (raw(margin="0.5e0"), "invalid_event", "margin: Value error, not a plain decimal"),
        (raw(schema_version=True), "invalid_event", "schema_version: Value error"),
        (raw(schema_version=1.0), "invalid_event", "schema_version: Value error"),
        (raw(**{"": 1}), "invalid_event", '"": Extra inputs are not permitted'),
        (raw(**{"x" * 500: 1}), "invalid_event", "x" * 64 + "...: Extra inputs"),
    ],
)
def test_defects_are_rejected_with_a_reason(message: bytes, reason: str, mentions: str) -> None:
    result = validate(PURCHASES, b"c1", message)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert mentions in result.detail


def test_key_must_equal_the_entity_the_topic_is_keyed_by() -> None:
    result = validate(PURCHASES, b"someone-else", raw())
    assert isinstance(result, Rejection) and result.reason == "key_mismatch"
    missing = validate(PURCHASES, None, raw())
    assert isinstance(missing, Rejection) and missing.reason == "key_mismatch"


def test_a_key_that_is_not_utf8_never_matches() -> None:
    """b"\\xff" decodes (with replacement) to U+FFFD, but is not that id's bytes."""
    message = raw(customer_id="\ufffd")
    assert not isinstance(validate(PURCHASES, "\ufffd".encode(), message), Rejection)
    result = validate(PURCHASES, b"\xff", message)
    assert isinstance(result, Rejection) and result.reason == "key_mismatch"
    assert "(not UTF-8)" in result.detail


def test_a_message_without_a_value_is_rejected_not_raised() -> None:
    result = validate(PURCHASES, b"c1", None)
    assert result == Rejection("invalid_json", "the message has no value (null), not a JSON event")
    letter = dead_letter(result, "purchases", 0, 5, b"c1", None)
    assert (letter["value_b64"], letter["value_bytes"], letter["value_text"]) == (None, None, None)
    assert letter["value_truncated"] is False


def test_too_many_problems_are_counted_not_listed() -> None:
    message = json.dumps({**GOOD, **{f"extra{i}": i for i in range(15)}}).encode()
    result = validate(PURCHASES, b"c1", message)
    assert isinstance(result, Rejection) and result.reason == "invalid_event"
    assert result.detail.count("Extra inputs") == 10
    assert result.detail.endswith("; and 5 more")


def test_event_on_the_wrong_topic() -> None:
    result = validate(AD_CLICKS, b"c1", raw())
    assert isinstance(result, Rejection) and result.reason == "wrong_topic"


def test_reserved_channel_name() -> None:
    spend = event_json(
        "ad_spend",
        channel="all",
        amount="1",
        currency="USD",
        category="media",
        period_start="2026-03-01",
        period_end="2026-03-01",
    )
    result = validate(AD_SPEND, b"all", json.dumps(spend).encode())
    assert isinstance(result, Rejection) and "reserved" in result.detail


def test_valid_purchase_passes() -> None:
    result = validate(PURCHASES, b"c1", raw())
    assert not isinstance(result, Rejection)
    assert result.type == "purchase"


def test_dead_letter_keeps_the_original_bytes_and_where_they_came_from() -> None:
    import base64

    letter = dead_letter(Rejection("invalid_json", "bad"), "purchases", 3, 17, b"k", b"\xffraw")
    assert letter["reason"] == "invalid_json"
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("purchases", 3, 17)
    assert base64.b64decode(str(letter["value_b64"])) == b"\xffraw"
    assert letter["value_text"] is None
    assert (letter["value_bytes"], letter["value_truncated"]) == (4, False)


def test_a_dead_letter_keeps_the_start_of_a_value_too_big_to_copy() -> None:
    """A copy of a value near Kafka's 1 MB limit would make the dead letter too big to send."""
    import base64

    value = bytes(range(256)) * 3500  # 896,000 bytes
    letter = dead_letter(Rejection("oversized", "big"), "purchases", 0, 1, b"k", value)
    assert base64.b64decode(str(letter["value_b64"])) == value[: 256 * 1024]
    assert (letter["value_bytes"], letter["value_truncated"]) == (896_000, True)
    assert len(json.dumps(letter)) < 1_000_000 - 1_000
    at_limit = dead_letter(Rejection("oversized", "big"), "t", 0, 1, None, value[: 256 * 1024])
    assert at_limit["value_truncated"] is False


def test_a_dead_letter_keeps_the_start_of_a_key_too_big_to_copy() -> None:
    import base64

    key = b"k" * 900_000  # a message may carry a key this long; a dead letter must not
    letter = dead_letter(Rejection("key_mismatch", "long"), "purchases", 0, 1, key, b"{}")
    assert base64.b64decode(str(letter["key_b64"])) == b"k" * 1024
    assert letter["key_truncated"] is True
    assert len(json.dumps(letter)) < 10_000
    short = dead_letter(Rejection("key_mismatch", "x"), "purchases", 0, 1, b"c1", b"{}")
    assert (base64.b64decode(str(short["key_b64"])), short["key_truncated"]) == (b"c1", False)
