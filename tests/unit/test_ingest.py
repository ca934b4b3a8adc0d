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
