"""Currency conversion into the reporting currency, at the rate of the event's day.

A rate says what one unit of a currency is worth in the reporting currency. Each rate
of a currency applies from its day (inclusive) until the day of the currency's next
rate; the reporting currency itself always converts at exactly 1. An amount is
multiplied exactly (``Decimal``, never float) and rounded once, half-even, to the cent.
An amount that cannot be converted is never counted 1:1: the conversion says why
(``unknown_currency``: no rate at all for the currency; ``missing_rate``: none in force
on the event's day).

Rates come from a CSV file read at start (``date,currency,rate``) and from the
``fx-rates`` topic, kept per currency in a table as ``[[day, "rate"], ...]``; for the
same currency and day the topic wins.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.events import Currency, Date, FxRate, Rate
from stream.domain.money import to_cents
from stream.domain.outcome import APPLIED, DUPLICATE, Outcome
from stream.domain.timeline import date_of_day, day_of_date
from stream.errors import ConfigurationError

UNKNOWN_CURRENCY = "unknown_currency"
MISSING_RATE = "missing_rate"
CSV_HEADER = ("date", "currency", "rate")

RateBook = dict[str, dict[int, Decimal]]  # currency -> day -> rate
TableValue = list[list[Any]]  # a currency's rates in the table: [[day, "rate"], ...] by day


class RatesFileError(ConfigurationError):
    """The rates file (``LTVCAC_FX_RATES_FILE``) cannot be read or has a bad line."""


@dataclass(frozen=True)
class Unconvertible:
    """Why an amount cannot be converted: a dead-letter reason and a detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class FxRates:
    """The rates of every currency other than the reporting one, ascending by day."""

    reporting_currency: str = "USD"
    rates: Mapping[str, Sequence[tuple[int, Decimal]]] = field(default_factory=dict)

    def rate(self, currency: str, day: int) -> Decimal | Unconvertible:
        """The rate of ``currency`` in force on ``day`` (days since the epoch, UTC)."""
        if currency == self.reporting_currency:
            return Decimal(1)
        known = self.rates.get(currency)
        if not known:
            return Unconvertible(
                UNKNOWN_CURRENCY,
                f"no rate at all for currency {currency} into {self.reporting_currency}"
                f" (event date {date_of_day(day)})",
            )
        index = bisect.bisect_right(known, day, key=lambda entry: entry[0])
        if index == 0:
            return Unconvertible(
                MISSING_RATE,
                f"no {currency} rate in force on {date_of_day(day)}: its first rate is"
                f" from {date_of_day(known[0][0])}",
            )
        return known[index - 1][1]

    def to_cents(self, amount: Decimal, currency: str, day: int) -> int | Unconvertible:
        """``amount`` of ``currency`` on ``day`` in cents of the reporting currency."""
        rate = self.rate(currency, day)
        return rate if isinstance(rate, Unconvertible) else converted_cents(amount, rate)


def converted_cents(amount: Decimal, rate: Decimal) -> int:
    """``amount * rate`` in cents, rounded half-even once (the product itself is exact)."""
    with localcontext() as context:
        context.prec = 60  # far beyond 11 digits of amount and 19 of rate
        return to_cents(amount * rate)


def fx_rates(reporting_currency: str, *books: RateBook) -> FxRates:
    """The rates of ``books`` merged; for the same currency and day a later book wins."""
    merged: RateBook = {}
    for book in books:
        for currency, by_day in book.items():
            merged.setdefault(currency, {}).update(by_day)
    return FxRates(
        reporting_currency,
        {currency: sorted(by_day.items()) for currency, by_day in merged.items() if by_day},
    )


# -- the fx-rates topic and its table


def handle_fx_rate(
    stored: TableValue | None, event: FxRate, reporting_currency: str
) -> tuple[Outcome, TableValue]:
    """A rate from the topic: the currency's table value with it (replacing a rate of
    the same day, so a correction wins), and whether that changed anything."""
    rates = list(stored or [])
    if problem := reporting_currency_rate(event.currency, reporting_currency):
        return Outcome.rejected("invalid_event", f"currency: {problem}"), rates
    entry = [day_of_date(event.effective_date), str(event.rate)]
    if entry in rates:
        return Outcome(DUPLICATE), rates
    rates = sorted([r for r in rates if r[0] != entry[0]] + [entry], key=lambda r: int(r[0]))
    return Outcome(APPLIED), rates


def reporting_currency_rate(currency: str, reporting_currency: str) -> str | None:
    """What is wrong with a rate for ``currency``: one for the reporting currency would
    say what is fixed (and, if not 1, comes from a feed in another base currency)."""
    if currency != reporting_currency:
        return None
    return f"{currency} is the reporting currency; it always converts at 1"


def table_book(items: Iterable[tuple[str, TableValue | None]]) -> RateBook:
    """The rates held in the fx-rates table."""
    return {
        currency: {int(day): Decimal(rate) for day, rate in value}
        for currency, value in items
        if value
    }


# -- the rates file


_CURRENCY: TypeAdapter[str] = TypeAdapter(Currency)
_DATE: TypeAdapter[dt.date] = TypeAdapter(Date)
_RATE: TypeAdapter[Decimal] = TypeAdapter(Rate)


def parse_rates_file(text: str, source: str, reporting_currency: str) -> RateBook:
    """Rates from CSV text with the header ``date,currency,rate``, one rate a row:
    ``YYYY-MM-DD``, an ISO 4217 code (three capitals), a positive plain decimal.

    Raises :class:`RatesFileError` at the first defect, as ``FILE:LINE: FIELD: message``.
    Blank lines are ignored.
    """
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or tuple(header) != CSV_HEADER:
        shown = ",".join(header or [])
        raise RatesFileError(f"{source}:1: (header): expected 'date,currency,rate', got {shown!r}")
    book: RateBook = {}
    first_seen: dict[tuple[str, int], int] = {}
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(CSV_HEADER):
            raise RatesFileError(
                f"{source}:{line}: (row): expected 3 fields date,currency,rate, got {len(row)}"
            )
        date = _field(_DATE, row[0], source, line, "date")
        currency = _field(_CURRENCY, row[1], source, line, "currency")
        rate = _field(_RATE, row[2], source, line, "rate")
        if problem := reporting_currency_rate(currency, reporting_currency):
            raise RatesFileError(f"{source}:{line}: currency: {problem}")
        day = day_of_date(date)
        if (currency, day) in first_seen:
            raise RatesFileError(
                f"{source}:{line}: date: a second {currency} rate for {date}"
                f" (the first is on line {first_seen[currency, day]})"
            )
        first_seen[currency, day] = line
        book.setdefault(currency, {})[day] = rate
    return book


def _field(adapter: TypeAdapter[Any], value: str, source: str, line: int, name: str) -> Any:
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        message = error.errors(include_url=False)[0]["msg"]
        raise RatesFileError(f"{source}:{line}: {name}: {message} (got {value!r})") from None
