"""Helpers for the type checker, where a test passes a value against an annotation on purpose."""

from __future__ import annotations

from typing import Any, cast

import optax

import adamjax


def unchecked(value: object) -> Any:
    """``value`` itself, typed ``Any``: an argument of a type the annotation does not list, given
    on purpose. Either a wrong type whose error the test checks, or one the function accepts
    although its annotation leaves it out: ``jax.ShapeDtypeStruct`` leaves for the sharding
    helpers (annotated as array trees), per-leaf learning rates of the torch presets (annotated
    as a number or a schedule), lists and arrays for ``betas``, NumPy integers for step counts."""
    return value


def as_optax(transform: adamjax.GradientTransformation) -> optax.GradientTransformation:
    """``transform`` itself, where optax's API is annotated with its own GradientTransformation:
    optax calls only ``init`` and ``update``, which an adamjax transform has too."""
    return cast(optax.GradientTransformation, transform)
