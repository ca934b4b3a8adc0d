"""Every setting is documented in the README's settings table."""

import re
from pathlib import Path

from stream.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_row_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `(LTVCAC_[A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    expected = {f"LTVCAC_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented == set(), "settings missing from the README"
    assert documented - expected == set(), "README documents settings that do not exist"
