"""Exchange rates: the rate in force on a day, conversion to cents, the table, the file."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import FxRate
from stream import cli
from stream.config import Settings
from stream.domain.fx import (
    FxRates,
    RatesFileError,
    Unconvertible,
    converted_cents,
    fx_rates,
    handle_fx_rate,
    parse_rates_file,
    table_book,
)
from stream.domain.outcome import APPLIED, DUPLICATE, REJECTED
from stream.domain.timeline import day_of_date
from tests.unit.events import event

MAR1 = day_of_date(dt.date(2026, 3, 1))
MAR10 = day_of_date(dt.date(2026, 3, 10))
# EUR is worth 1.10 USD from 1 March 2026 (inclusive) and 1.20 USD from 10 March.
RATES = FxRates("USD", {"EUR": [(MAR1, Decimal("1.10")), (MAR10, Decimal("1.20"))]})


def test_a_rate_is_in_force_from_its_day_until_the_next_rates_day() -> None:
    assert RATES.rate("EUR", MAR1) == Decimal("1.10")
    assert RATES.rate("EUR", MAR10 - 1) == Decimal("1.10")  # 9 March
    assert RATES.rate("EUR", MAR10) == Decimal("1.20")
    assert RATES.rate("EUR", MAR10 + 400) == Decimal("1.20")
    assert RATES.to_cents(Decimal("100.00"), "EUR", MAR10 - 1) == 11000
    assert RATES.to_cents(Decimal("100.00"), "EUR", MAR10) == 12000


def test_the_day_before_the_first_rate_is_a_missing_rate() -> None:
    assert RATES.to_cents(Decimal("100.00"), "EUR", MAR1 - 1) == Unconvertible(
        "missing_rate", "no EUR rate in force on 2026-02-28: its first rate is from 2026-03-01"
    )


def test_a_currency_without_any_rate_is_unknown() -> None:
    assert RATES.to_cents(Decimal("1.00"), "GBP", MAR10) == Unconvertible(
        "unknown_currency", "no rate at all for currency GBP into USD (event date 2026-03-10)"
    )


def test_the_reporting_currency_converts_at_exactly_one_on_any_day() -> None:
    assert RATES.rate("USD", 0) == Decimal(1)
    assert RATES.to_cents(Decimal("12.34"), "USD", MAR1 - 5000) == 1234
    assert FxRates("EUR").to_cents(Decimal("0.01"), "EUR", MAR1) == 1


@pytest.mark.parametrize(
    ("amount", "rate", "cents"),
    [
        ("0.05", "0.5", 2),  # 0.025: half to even, down
        ("0.15", "0.5", 8),  # 0.075: half to even, up
        ("1.23", "1.5", 184),  # 1.845
        ("1.25", "1.1", 138),  # 1.375
        ("2.03", "0.5", 102),  # 1.015 exactly; as floats 2.03 * 0.5 * 100 = 101.4999...
        ("0.01", "0.000000000001", 0),
        # (1e9 - 0.01) x (999991.4 - 1e-12) = 999991399990000.085 + 1e-14: just over half a
        # cent, which Decimal's default 28 digits would round away (and then round down)
        ("999999999.99", "999991.399999999999", 99999139999000009),
    ],
)
def test_conversion_is_exact_then_rounded_half_even_to_the_cent(
    amount: str, rate: str, cents: int
) -> None:
    assert converted_cents(Decimal(amount), Decimal(rate)) == cents


def test_the_topics_rates_win_over_the_files_for_the_same_day() -> None:
    file = {"EUR": {MAR1: Decimal("1.10"), MAR10: Decimal("1.20")}, "GBP": {MAR1: Decimal("1.3")}}
    topic = {"EUR": {MAR10: Decimal("1.25"), MAR10 + 1: Decimal("1.30")}}
    merged = fx_rates("USD", file, topic)
    assert merged.rates == {
        "EUR": [(MAR1, Decimal("1.10")), (MAR10, Decimal("1.25")), (MAR10 + 1, Decimal("1.30"))],
        "GBP": [(MAR1, Decimal("1.3"))],
    }


def fx_rate(currency: str, rate: str, effective: str) -> FxRate:
    parsed: FxRate = event("fx_rate", currency=currency, rate=rate, effective_date=effective)
    return parsed


def test_a_rate_from_the_topic_is_kept_by_day_and_a_correction_replaces_it() -> None:
    outcome, value = handle_fx_rate(None, fx_rate("EUR", "1.20", "2026-03-10"), "USD")
    assert (outcome.status, value) == (APPLIED, [[MAR10, "1.20"]])
    outcome, value = handle_fx_rate(value, fx_rate("EUR", "1.10", "2026-03-01"), "USD")
    assert (outcome.status, value) == (APPLIED, [[MAR1, "1.10"], [MAR10, "1.20"]])
    outcome, value = handle_fx_rate(value, fx_rate("EUR", "1.25", "2026-03-10"), "USD")
    assert (outcome.status, value) == (APPLIED, [[MAR1, "1.10"], [MAR10, "1.25"]])
    again, same = handle_fx_rate(value, fx_rate("EUR", "1.25", "2026-03-10"), "USD")
    assert (again.status, same) == (DUPLICATE, value)
    assert table_book([("EUR", value), ("GBP", None)]) == {
        "EUR": {MAR1: Decimal("1.10"), MAR10: Decimal("1.25")}
    }


def test_a_rate_for_the_reporting_currency_is_rejected() -> None:
    outcome, value = handle_fx_rate([], fx_rate("USD", "1", "2026-03-10"), "USD")
    assert (outcome.status, outcome.reason, value) == (REJECTED, "invalid_event", [])
    assert outcome.detail == "currency: USD is the reporting currency; it always converts at 1"


# -- the rates file


def test_a_rates_file_is_read_row_by_row() -> None:
    text = "date,currency,rate\n2026-03-01,EUR,1.10\n\n2026-03-10,EUR,1.2\n2026-03-01,JPY,0.0064\n"
    assert parse_rates_file(text, "rates.csv", "USD") == {
        "EUR": {MAR1: Decimal("1.10"), MAR10: Decimal("1.2")},
        "JPY": {MAR1: Decimal("0.0064")},
    }
    assert parse_rates_file("date,currency,rate\n", "rates.csv", "USD") == {}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "rates.csv:1: (header): expected 'date,currency,rate', got ''"),
        ("day,currency,rate\n", "rates.csv:1: (header): expected 'date,currency,rate', got"),
        ("date,currency,rate\n2026-03-01,EUR\n", "rates.csv:2: (row): expected 3 fields"),
        ("date,currency,rate\n\n2026-03-01,EUR,1.1,x\n", "rates.csv:3: (row): expected 3 fields"),
        ("date,currency,rate\n2026-3-1,EUR,1.1\n", "rates.csv:2: date: "),
        ("date,currency,rate\n2026-02-30,EUR,1.1\n", "rates.csv:2: date: "),
        ("date,currency,rate\n2026-03-01,eur,1.1\n", "rates.csv:2: currency: "),
        ("date,currency,rate\n2026-03-01,EURO,1.1\n", "rates.csv:2: currency: "),
        ("date,currency,rate\n2026-03-01,EUR,0\n", "rates.csv:2: rate: Input should be greater"),
        ("date,currency,rate\n2026-03-01,EUR,-1.1\n", "rates.csv:2: rate: Input should be greater"),
        ("date,currency,rate\n2026-03-01,EUR,1,1\n", "rates.csv:2: (row): expected 3 fields"),
        ("date,currency,rate\n2026-03-01,EUR,1e3\n", "rates.csv:2: rate: Value error, not a plain"),
        ("date,currency,rate\n2026-03-01,EUR,\n", "rates.csv:2: rate: "),
        (
            "date,currency,rate\n2026-03-01,USD,1\n",
            "rates.csv:2: currency: USD is the reporting currency; it always converts at 1",
        ),
        (
            "date,currency,rate\n2026-03-01,EUR,1.1\n2026-03-02,EUR,1.1\n2026-03-01,EUR,1.2\n",
            "rates.csv:4: date: a second EUR rate for 2026-03-01 (the first is on line 2)",
        ),
    ],
)
def test_a_bad_rates_file_names_its_line_and_field(text: str, error: str) -> None:
    with pytest.raises(RatesFileError) as raised:
        parse_rates_file(text, "rates.csv", "USD")
    assert str(raised.value).startswith(error)


def test_a_worker_with_a_bad_rates_file_stops_at_start(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2026-03-01,EUR,1.10\n2026-03-02,EUR,0.00\n")
    with pytest.raises(SystemExit) as stopped:  # before it looks for Kafka
        cli.run_worker(Settings(fx_rates_file=str(rates)))
    assert stopped.value.code == (
        f"ltvcac: invalid rates file (LTVCAC_FX_RATES_FILE): {rates}:3: rate:"
        " Input should be greater than 0 (got '0.00')"
    )
    with pytest.raises(SystemExit) as missing:
        cli.run_worker(Settings(fx_rates_file=str(tmp_path / "nope.csv")))
    assert missing.value.code == (
        "ltvcac: invalid rates file (LTVCAC_FX_RATES_FILE): "
        f"cannot read {tmp_path / 'nope.csv'}: No such file or directory"
    )


def test_a_rates_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_bytes(b"\xef\xbb\xbfdate,currency,rate\r\n2026-03-01,EUR,1.10\r\n")
    settings = Settings(fx_rates_file=str(rates))
    assert cli.read_rates_file(settings) == {"EUR": {MAR1: Decimal("1.10")}}
