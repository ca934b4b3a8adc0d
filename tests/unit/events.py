"""Small builders of valid events for tests (defaults are arbitrary but valid)."""

from __future__ import annotations

import itertools
from typing import Any

from schemas.events import parse_event

_ids = itertools.count(1)


def event_json(
    event_type: str, occurred_at: str = "2026-03-01T10:00:00Z", **fields: Any
) -> dict[str, Any]:
    return {
        "type": event_type,
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "occurred_at": occurred_at,
        "schema_version": 1,
        **fields,
    }


def event(event_type: str, occurred_at: str = "2026-03-01T10:00:00Z", **fields: Any) -> Any:
    import json

    return parse_event(json.dumps(event_json(event_type, occurred_at, **fields)).encode())
