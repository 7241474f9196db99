"""README's Design map names every module of the exporter package, so a newcomer finds each one there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def design_map() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Design\n", 1)[1]
    return section.split("```", 2)[1]


def test_every_module_is_in_the_design_map():
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", design_map()))
    missing = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "exporter").rglob("*.py")
        if path.stem not in {"__init__", "__main__"} and path.stem not in names
    )
    assert missing == [], f"modules missing from README's Design map: {missing}"
