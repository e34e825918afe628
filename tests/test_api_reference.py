"""Every public name has a place in the API reference (docs/api/*.md), and every entry there
names something that exists."""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

import adamjax

ROOT = pathlib.Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
ENTRY = re.compile(r"^::: (adamjax(?:\.\w+)*)\s*$", re.MULTILINE)


def _entries() -> dict[str, str]:
    """``identifier -> page`` for every ``::: identifier`` line of the API pages."""
    found = {}
    for page in sorted(API.glob("*.md")):
        for identifier in ENTRY.findall(page.read_text()):
            found[identifier] = page.name
    return found


def _resolve(identifier: str) -> object:
    parts = identifier.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(identifier)


PUBLIC = [f"adamjax.{name}" for name in adamjax.__all__]
PUBLIC += [f"adamjax.schedules.{name}" for name in adamjax.schedules.__all__]
PUBLIC += [f"adamjax.presets.{name}" for name in adamjax.presets.__all__]


@pytest.mark.parametrize("identifier", PUBLIC)
def test_public_name_is_in_the_api_reference(identifier: str) -> None:
    assert identifier in _entries(), f"no '::: {identifier}' line in docs/api/*.md"


def test_every_entry_names_an_existing_object() -> None:
    entries = _entries()
    assert len(entries) >= len(PUBLIC)
    for identifier, page in entries.items():
        try:
            _resolve(identifier)
        except (ImportError, AttributeError) as error:
            raise AssertionError(f"docs/api/{page}: '::: {identifier}' does not exist") from error


def test_every_api_page_is_in_the_site_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    for page in API.glob("*.md"):
        assert f"api/{page.name}" in config, f"docs/api/{page.name} is not in mkdocs.yml's nav"
