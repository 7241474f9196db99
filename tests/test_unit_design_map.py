"""README's Design map names every module of the exporter package under its own package, so a newcomer
finds each one there, and names no module that does not exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPORTER = ROOT / "exporter"
TOP_LEVEL = "exporter"


def design_map() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Design\n", 1)[1]
    return section.split("```", 2)[1]


def listed_modules(block: str) -> dict[str, set[str]]:
    """{package directory name (TOP_LEVEL for exporter/ itself): the module names the map lists under it}.

    A package's entry is its `name/` line and the lines that follow it indented, each naming its modules
    as items separated by `·` or `──▶`, the name first, then maybe a (note) or prose; a subpackage is named
    `name/` and has its own entry. Top-level modules are named `name.py`, anywhere outside a path.
    """
    listed: dict[str, set[str]] = {TOP_LEVEL: set(re.findall(r"(?<![\w/])(\w+)\.py\b", block))}
    package = None
    for line in block.splitlines():
        if header := re.match(r"\s*(\w+)/\s+(.*)", line):
            package, line = header.groups()
            listed.setdefault(package, set())
        elif package is None or not re.match(r"\s+[a-z_]\w*(\s|$)", line):
            package = None  # prose (│ ▼), top-level modules or a blank line end the entry
            continue
        for item in re.split(r"·|──▶", line):
            name = re.match(r"[a-z_]\w*(?![\w/])", item.strip())  # a module, not a subpackage (name/)
            if name:
                listed[package].add(name.group())
    return listed


def actual_modules() -> dict[str, set[str]]:
    """{package directory name (TOP_LEVEL for exporter/ itself): its modules' names}."""
    modules: dict[str, set[str]] = {}
    for path in EXPORTER.rglob("*.py"):
        if path.stem not in {"__init__", "__main__"}:
            modules.setdefault(path.parent.name, set()).add(path.stem)
    return modules


def test_package_directory_names_are_unique_so_the_map_can_name_packages_by_them():
    packages = [path.parent.name for path in EXPORTER.rglob("__init__.py")]
    assert len(packages) == len(set(packages)) and TOP_LEVEL in packages


def test_every_module_is_in_the_design_map_under_its_own_package():
    listed, actual = listed_modules(design_map()), actual_modules()
    missing = sorted(f"{package}/{name}" for package, names in actual.items() for name in names - listed.get(package, set()))
    assert missing == [], f"modules missing from their package's line in README's Design map: {missing}"


def test_every_module_the_design_map_names_exists_in_that_package():
    listed, actual = listed_modules(design_map()), actual_modules()
    unknown = sorted(f"{package}/{name}" for package, names in listed.items() for name in names - actual.get(package, set()))
    assert unknown == [], f"README's Design map names modules that are not there: {unknown}"
