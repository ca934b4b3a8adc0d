"""The JSON Schema files producers use must match the models (run `make schemas`)."""

from schemas.export import JSON_DIR, rendered_schemas


def test_exported_json_schema_files_match_the_models() -> None:
    expected = rendered_schemas()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in JSON_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "schema files added or missing: run `make schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} drifted from the model: run `make schemas`"
