"""Who referred whom: the referral tree, kept on both of its ends.

A referred customer's record knows its referrer from its attribution (``visitor.py``
picks it with the primary model). Its *referral state* at each version is
(referrer, acquisition day), or None when nobody referred it. An input that changes the
state makes the customer send a ``referred`` message to each referrer concerned: the
change in that referrer's referred customers by acquisition day (-1 on the old day to
the old referrer, +1 on the new day to the new one). Like the channel deltas these are
differences of a function of the record, so they add up to the current tree whatever
the order, and a redelivered input sends them again identically. Each names its origin
(the referred customer's input); the referrer keeps a high-water mark per origin
partition and ignores what it has applied already.

The referrer keeps, in :class:`Referrals`:

- ``days``: how many customers it referred, by their acquisition day. Exact, and small
  (a counter per day), so figures built on it are exact however many it referred.
- ``listed``: which customers, for the Redis set: those acquired on or after
  ``listed_from``. When more than ``MAX_LISTED`` are listed, ``listed_from`` moves
  past the earliest days and their customers leave the list (only the list: ``days``
  keeps counting them), so a referrer with thousands of referrals stays a small record.
- ``notes``: its latest changes with the version each made, to compute the record's
  contribution at an earlier version and re-send the deltas of a redelivered message.
- ``origins``: the high-water mark per origin partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.domain.channel import Source
from stream.domain.outcome import Message
from stream.domain.visitor import CUSTOMER_UPDATES

MAX_LISTED = 1000  # referred customers listed per referrer (the counts are not bounded)
MAX_NOTES = 20  # like attributions: older ones only serve a redelivery of an old input
ReferralState = tuple[str, int] | None  # (referrer, acquisition day) of a referred customer


def _add(counts: dict[int, int], day: int, change: int) -> None:
    total = counts.get(day, 0) + change
    if total:
        counts[day] = total
    else:
        counts.pop(day, None)


@dataclass
class ReferralNote:
    """A change to the referred customers, applied as ``version`` by the message at
    ``offset``."""

    version: int
    offset: int
    days: dict[int, int]  # acquisition day -> change in customers referred


@dataclass
class Referrals:
    """The customers this customer referred (see the module docstring)."""

    days: dict[int, int] = field(default_factory=dict)
    listed: dict[str, dict[int, int]] = field(default_factory=dict)  # id -> day -> count
    listed_from: int = 0  # first acquisition day whose customers are listed
    notes: list[ReferralNote] = field(default_factory=list)
    origins: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Customers referred (exact)."""
        return sum(self.days.values())

    def customers(self) -> list[str]:
        """The listed customers it referred."""
        return sorted(c for c, by_day in self.listed.items() if sum(by_day.values()) > 0)

    def applied(self, origin: Source) -> bool:
        last = self.origins.get(origin.stream)
        return last is not None and origin.position <= last

    def apply(
        self, referred_id: str, changes: dict[int, int], origin: Source, version: int, offset: int
    ) -> None:
        """Apply a change sent by ``referred_id``'s input ``origin``, as ``version``."""
        self.origins[origin.stream] = origin.position
        for day, change in changes.items():
            _add(self.days, day, change)
            if day >= self.listed_from:
                by_day = self.listed.setdefault(referred_id, {})
                _add(by_day, day, change)
                if not by_day:
                    del self.listed[referred_id]
        self.notes.append(ReferralNote(version, offset, dict(changes)))
        del self.notes[:-MAX_NOTES]
        self._bound()

    def _bound(self) -> None:
        """Keep at most ``MAX_LISTED`` customers listed: those of the latest days."""
        if len(self.listed) <= MAX_LISTED:
            return
        newest = {c: max(by_day) for c, by_day in self.listed.items()}
        by_day: dict[int, int] = {}
        for day in newest.values():
            by_day[day] = by_day.get(day, 0) + 1
        kept = 0
        for day in sorted(by_day, reverse=True):
            if kept + by_day[day] > MAX_LISTED:
                self.listed_from = day + 1
                break
            kept += by_day[day]
        for customer in list(self.listed):
            days = {d: n for d, n in self.listed[customer].items() if d >= self.listed_from}
            if days:
                self.listed[customer] = days
            else:
                del self.listed[customer]

    def latest_day(self, version: int) -> int | None:
        """The latest acquisition day of a customer referred, as of ``version``."""
        days = dict(self.days)
        for note in self.notes:
            if note.version > version:
                for day, change in note.days.items():
                    _add(days, day, -change)
        return max((day for day, count in days.items() if count > 0), default=None)

    def note_at(self, offset: int) -> ReferralNote | None:
        """The change the message at ``offset`` applied, if it applied one."""
        return next((note for note in self.notes if note.offset == offset), None)

    def to_json(self) -> dict[str, Any] | None:
        """None while it never referred anyone (most customers): nothing to store."""
        if not self.origins:
            return None
        return {
            "days": {str(day): count for day, count in self.days.items()},
            "listed": {
                c: {str(day): n for day, n in by_day.items()} for c, by_day in self.listed.items()
            },
            "listed_from": self.listed_from,
            "notes": [
                [n.version, n.offset, {str(d): c for d, c in n.days.items()}] for n in self.notes
            ],
            "origins": {stream: list(position) for stream, position in self.origins.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Referrals:
        if data is None:
            return cls()
        return cls(
            days=days_from_json(data["days"]),
            listed={c: days_from_json(by_day) for c, by_day in data["listed"].items()},
            listed_from=data["listed_from"],
            notes=[ReferralNote(v, o, days_from_json(d)) for v, o, d in data["notes"]],
            origins={stream: (p[0], p[1]) for stream, p in data["origins"].items()},
        )


def days_from_json(value: object) -> dict[int, int]:
    """Day -> count from JSON (string keys); ValueError when malformed."""
    if not isinstance(value, dict) or not all(isinstance(n, int) for n in value.values()):
        raise ValueError("days must map day numbers to integers")
    return {int(day): count for day, count in value.items()}


def origin_from_json(value: object) -> Source:
    """The origin of a ``referred`` message; ValueError when malformed."""
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError("origin must be [topic, partition, offset, seq]")
    topic, partition, offset, seq = value
    if not isinstance(topic, str) or not all(isinstance(n, int) for n in (partition, offset, seq)):
        raise ValueError("origin must be [topic, partition, offset, seq]")
    return Source(topic, partition, offset, seq)


def referral_messages(
    customer_id: str, before: ReferralState, after: ReferralState, origin: Source
) -> list[Message]:
    """What the input ``origin`` of a referred customer changed for its referrers."""
    changes: dict[str, dict[int, int]] = {}
    for state, change in ((before, -1), (after, 1)):
        if state is not None:
            referrer, day = state
            _add(changes.setdefault(referrer, {}), day, change)
    messages = []
    for referrer, days in sorted(changes.items()):
        if not days:
            continue  # the same referrer and day before and after
        value = {
            "type": "referred",
            "customer_id": referrer,
            "referred_id": customer_id,
            "days": {str(day): change for day, change in sorted(days.items())},
            "origin": [origin.topic, origin.partition, origin.offset, origin.seq],
        }
        messages.append(Message(CUSTOMER_UPDATES, referrer, value))
    return messages
