"""Write the JSON Schema of every event model under ``schemas/json/``.

Run with ``make schemas`` after changing a model; a test fails while the files drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.events import EVENT_MODELS, event_adapter

JSON_DIR = Path(__file__).parent / "json"


def rendered_schemas() -> dict[str, str]:
    """File name -> JSON text, for every event model and the union of all events."""
    documents: dict[str, Any] = {"event.schema.json": event_adapter.json_schema()}
    for model in EVENT_MODELS:
        event_type = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        documents[f"{event_type}.schema.json"] = model.model_json_schema()
    return {
        name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in documents.items()
    }


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in rendered_schemas().items():
        (JSON_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {JSON_DIR / name}")


if __name__ == "__main__":
    main()
