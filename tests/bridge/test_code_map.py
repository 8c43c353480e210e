"""The README's code map names every module of bridge/, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_code_map_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Code map of the bridge"):]
    section = section[: section.index("\n## ")]
    named: set[str] = set()
    for bullet in re.findall(r"^- `bridge/(\w+)/` — (.*?)(?=^- |\Z)", section, re.M | re.S):
        package, text = bullet
        named |= {f"{package}/{m}" for m in re.findall(r"`(\w+\.py)`", text)}
    tree = {f"{p.parent.name}/{p.name}" for p in (ROOT / "bridge").glob("*/*.py") if p.name != "__init__.py"}
    assert named == tree
