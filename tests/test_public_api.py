"""Every public name is documented, and listed in the README."""

from __future__ import annotations

import inspect
import pathlib

import pytest

import adamjax

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", adamjax.__all__)
def test_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(adamjax, name)
    doc = inspect.getdoc(obj)
    assert doc and len(doc) > 20, f"adamjax.{name} has no docstring"


@pytest.mark.parametrize("module", [adamjax.schedules, adamjax.presets])
def test_submodule_names_have_docstrings(module) -> None:
    assert module.__all__
    for name in module.__all__:
        doc = inspect.getdoc(getattr(module, name))
        assert doc and len(doc) > 20, f"{module.__name__}.{name} has no docstring"


def test_every_public_callable_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        name
        for name in adamjax.__all__
        if callable(getattr(adamjax, name))
        and not inspect.isclass(getattr(adamjax, name))
        and f"`{name}" not in readme
        and f" {name}`" not in readme
        and f"`{name}(" not in readme
    ]
    assert not missing, f"not in the README table: {missing}"


def test_aliases_docstrings_state_their_rule_and_reference() -> None:
    for name in ("adam", "adamw", "amsgrad", "adamax", "nadam"):
        doc = inspect.getdoc(getattr(adamjax, name)) or ""
        assert ".. math::" in doc, name
        assert "References:" in doc, name
