"""Every Python package folder of the repository is in pyproject's explicit `packages` list, so a wheel
(not only an editable install) carries all of qkv."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_listed() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = cfg["package-dir"]  # qkv.agent -> agent, ...
    listed = set(cfg["packages"])
    found = set()
    for dotted, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([dotted, *rel.parts]) if rel.parts else dotted)
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    # The rest are data packages: folders of data files (no __init__.py) that package-data ships.
    data = listed - found
    for dotted in data:
        top = next(d for d in mapping if dotted.startswith(d + "."))
        folder = ROOT / mapping[top] / dotted[len(top) + 1:].replace(".", "/")
        assert folder.is_dir() and any(folder.iterdir()), f"listed package {dotted} has no folder"
        assert dotted in cfg["package-data"], f"data package {dotted} ships no files (add package-data)"
