"""The examples in the docstrings (the API reference shows them) run and print what they say.

They run with JAX's default settings (32-bit types, standard dtype promotion), as a user who
copies them would, not with the suite's strict ones.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import jax
import pytest

import adamjax

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(adamjax.__path__, prefix="adamjax."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    with jax.enable_x64(False), jax.numpy_dtype_promotion("standard"):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_reference_has_examples_to_run() -> None:
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
    )
    assert examples >= 13
