"""Every public name is documented and listed in the README; the tests' catalog is complete."""

from __future__ import annotations

import inspect
import pathlib
from typing import Any

import pytest

import adamjax
from tests import catalog

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", adamjax.__all__)
def test_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(adamjax, name)
    doc = inspect.getdoc(obj)
    assert doc and len(doc) > 20, f"adamjax.{name} has no docstring"


@pytest.mark.parametrize(
    "module", [adamjax.schedules, adamjax.presets, adamjax.sweep, adamjax.ensemble]
)
def test_submodule_names_have_docstrings(module: Any) -> None:
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


def test_the_catalog_lists_every_public_optimizer() -> None:
    """Every public function whose first argument is a learning rate is an optimizer the tests
    loop over (tests/catalog.py) or a building block that takes a rate."""
    takes_a_rate = set()
    for name in adamjax.__all__:
        obj = getattr(adamjax, name)
        if callable(obj) and not inspect.isclass(obj):
            parameters = list(inspect.signature(obj).parameters)
            if parameters[:1] == ["learning_rate"]:
                takes_a_rate.add(name)
    listed_elsewhere = set(catalog.LEARNING_RATE_BLOCKS)
    assert takes_a_rate - listed_elsewhere == set(catalog.OPTIMIZERS)
    assert len(set(catalog.OPTIMIZERS)) == len(catalog.OPTIMIZERS)
