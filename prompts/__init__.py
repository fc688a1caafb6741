"""Persona and step prompts as text templates with named slots (no logic): `load(name)` reads one."""


def load(name: str) -> str:
    """The text of prompts/<name> (a .md file shipped with the package)."""
    from importlib.resources import files

    return files("qkv.prompts").joinpath(name).read_text(encoding="utf-8")
