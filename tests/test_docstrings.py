"""The examples in the docstrings (the API reference shows them) run and print what they say.

They run with JAX's default settings (32-bit types, standard dtype promotion), as a user who
copies them would, not with the suite's strict ones.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import jax
import pytest

import adamjax

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(adamjax.__path__, prefix="adamjax."))


@pytest.mark.slow  # each example compiles its own programs
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


def _public_functions() -> dict[str, object]:
    namespaces = [adamjax, adamjax.presets, adamjax.schedules, adamjax.ensemble, adamjax.sweep]
    found = {}
    for namespace in namespaces:
        prefix = "" if namespace is adamjax else namespace.__name__.removeprefix("adamjax.") + "."
        for name in namespace.__all__:
            value = getattr(namespace, name)
            if inspect.isfunction(value):
                found[prefix + name] = value
    return found


PUBLIC_FUNCTIONS = _public_functions()


@pytest.mark.parametrize("name", sorted(PUBLIC_FUNCTIONS))
def test_every_public_function_has_args_and_returns_sections(name: str) -> None:
    function = PUBLIC_FUNCTIONS[name]
    doc = inspect.getdoc(function) or ""
    lines = {line.strip() for line in doc.splitlines()}
    takes_arguments = bool(inspect.signature(function).parameters)  # pyright: ignore[reportArgumentType]
    assert not takes_arguments or "Args:" in lines, f"{name} has no Args: section"
    assert "Returns:" in lines, f"{name} has no Returns: section"
