"""Cross-checks with optax: the same rule, and the same call, give the same trajectory; the two
libraries' transforms compose in each other's chains; the arguments come in optax's order."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from tests import catalog
from tests.typed import as_optax

STEPS = 50


# optax relies on implicit promotion (python float ** int32 count), which the suite's strict
# mode rejects; adamjax itself is checked under strict mode everywhere else
pytestmark = pytest.mark.usefixtures("standard_promotion")


def _grads(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"w": rng.normal(size=(4, 3)) * np.exp(rng.normal()), "b": rng.normal(size=3) + 0.2}
        for _ in range(STEPS)
    ]


def _trajectory(transform: Any, apply: Callable, grads: list[dict]) -> list[dict]:
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
    state = transform.init(params)
    out = []
    for g in grads:
        updates, state = transform.update(jax.tree.map(jnp.asarray, g), state, params)
        params = apply(params, updates)
        out.append(params)
    return out


# name -> (adamjax factory, optax factory): the same rule and hyperparameters.
PAIRS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "adam": (lambda: adamjax.adam(0.01), lambda: optax.adam(0.01)),
    "adam-eps-root": (
        lambda: adamjax.adam(0.01, 0.8, 0.95, 1e-6, eps_root=1e-8),
        lambda: optax.adam(0.01, 0.8, 0.95, 1e-6, eps_root=1e-8),
    ),
    "adamw": (
        lambda: adamjax.adamw(0.01, weight_decay=0.05),
        lambda: optax.adamw(0.01, weight_decay=0.05),
    ),
    "adamw-mask": (
        lambda: adamjax.adamw(0.01, weight_decay=0.05, mask={"w": True, "b": False}),
        lambda: optax.adamw(0.01, weight_decay=0.05, mask={"w": True, "b": False}),
    ),
    "amsgrad": (lambda: adamjax.amsgrad(0.01), lambda: optax.amsgrad(0.01)),
    "adamax": (lambda: adamjax.adamax(0.01), lambda: optax.adamax(0.01)),
    "nadam": (lambda: adamjax.nadam(0.01), lambda: optax.nadam(0.01)),
    "sgd": (lambda: adamjax.sgd(0.01), lambda: optax.sgd(0.01)),  # the default call too
    "sgd-momentum": (lambda: adamjax.sgd(0.01, 0.9), lambda: optax.sgd(0.01, 0.9)),
    "sgd-nesterov": (
        lambda: adamjax.sgd(0.01, 0.9, nesterov=True),
        lambda: optax.sgd(0.01, 0.9, nesterov=True),
    ),
    "rmsprop": (
        lambda: adamjax.rmsprop(0.01, 0.9, 1e-8),
        lambda: optax.rmsprop(0.01, 0.9, 1e-8),
    ),
    "rmsprop-momentum-bias-correction": (
        lambda: adamjax.rmsprop(0.01, 0.9, 1e-8, 0.0, True, False, 0.9, True, True),
        lambda: optax.rmsprop(0.01, 0.9, 1e-8, 0.0, True, False, 0.9, True, True),
    ),
    "rmsprop-eps-outside": (
        lambda: adamjax.rmsprop(0.01, 0.9, 1e-8, eps_in_sqrt=False),
        lambda: optax.rmsprop(0.01, 0.9, 1e-8, eps_in_sqrt=False),
    ),
    "adagrad": (
        lambda: adamjax.adagrad(0.1, 0.1, 1e-7),
        lambda: optax.adagrad(0.1, 0.1, 1e-7),
    ),
    "adagrad-defaults": (
        lambda: adamjax.adagrad(0.1),
        lambda: optax.adagrad(0.1),
    ),
    "adam-cosine-schedule": (
        lambda: adamjax.adam(adamjax.schedules.cosine_decay(0.01, 40, 0.1)),
        lambda: optax.adam(optax.cosine_decay_schedule(0.01, 40, 0.1)),
    ),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_same_trajectory_as_optax(name: str) -> None:
    ours_factory, optax_factory = PAIRS[name]
    grads = _grads()
    ours = _trajectory(ours_factory(), adamjax.apply_updates, grads)
    theirs = _trajectory(optax_factory(), optax.apply_updates, grads)
    # optax's own bias-correction factor is rounded to float32; schedules run in float32.
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ours[-1]["w"], 1.0)  # the trajectory went somewhere


def test_adamjax_transform_inside_optax_chain() -> None:
    grads = _grads()
    ours = _trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), as_optax(adamjax.adam(0.01))),
        optax.apply_updates,
        grads,
    )
    theirs = _trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)), optax.apply_updates, grads
    )
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_optax_transform_inside_adamjax_chain() -> None:
    grads = _grads()
    ours = _trajectory(
        adamjax.chain(optax.clip_by_global_norm(1.0), adamjax.adam(0.01)),
        adamjax.apply_updates,
        grads,
    )
    theirs = _trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)), optax.apply_updates, grads
    )
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)
    # the clipping really acted: the gradients used here have norms well above 1
    assert max(float(optax.tree.norm(jax.tree.map(jnp.asarray, g))) for g in grads) > 2.0


def test_optax_schedule_accepted() -> None:
    schedule = optax.linear_schedule(0.1, 0.0, 10)
    opt = adamjax.sgd(schedule)
    params = jnp.zeros(2)
    state = opt.init(params)
    seen = []
    for _ in range(3):
        updates, state = opt.update(jnp.ones(2), state, params)
        seen.append(float(-updates[0]))
    np.testing.assert_allclose(seen, [0.1, 0.09, 0.08], rtol=1e-6)


# ----- calls that run in both libraries ----------------------------------------------------

SAME_CALL_PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def _same_call_grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))}


def _flat_trajectory(optimizer: Any, steps: int = 20) -> list[np.ndarray]:
    params = SAME_CALL_PARAMS
    state = optimizer.init(params)
    out = []
    for step in range(steps):
        updates, state = optimizer.update(_same_call_grads(step), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(params)]))
    return out


# the same positional call in both libraries: it must mean the same thing (sgd(1e-2),
# rmsprop(1e-2) and adagrad(1e-1) are in PAIRS above)
SAME_CALL: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "adam all positional": ("adam", (1e-2, 0.8, 0.95, 1e-6, 1e-4, jnp.float32), {}),
    "adamw eps_root fifth": ("adamw", (1e-2, 0.9, 0.999, 1e-8, 1e-2), {}),
    "adamw all positional": (
        "adamw",
        (1e-2, 0.9, 0.999, 1e-8, 0.0, None, 1e-2, {"w": True, "b": False}),
        {},
    ),
    "adamw nesterov": ("adamw", (1e-2,), {"weight_decay": 0.1, "nesterov": True}),
    "adam nesterov": ("adam", (1e-2,), {"nesterov": True}),
    "adamw weight decay schedule": (
        "adamw",
        (1e-2,),
        {"weight_decay": optax.linear_schedule(0.5, 0.0, 10)},
    ),
    "add_decayed_weights schedule": (
        "add_decayed_weights",
        (optax.exponential_decay(0.5, 4, 0.5),),
        {},
    ),
    "amsgrad positional": ("amsgrad", (1e-2, 0.9, 0.99, 1e-8, 1e-8), {}),
    "nadam positional": ("nadam", (1e-2, 0.9, 0.99, 1e-8, 1e-8), {}),
    "nadam nesterov": ("nadam", (1e-2,), {"nesterov": True}),
    "amsgrad corrections": ("amsgrad", (1e-2, 0.9, 0.99, 1e-8, 0.0, None, True, True), {}),
    "scale step_size": ("scale", (), {"step_size": -0.5}),
    "adamax positional": ("adamax", (1e-2, 0.8, 0.9, 1e-6), {}),
    "sgd momentum None": ("sgd", (1e-2, None), {}),
    "sgd momentum zero": ("sgd", (1e-2, 0.0), {}),
    "sgd nesterov positional": ("sgd", (1e-2, 0.9, True), {}),
    "sgd accumulator dtype": ("sgd", (1e-2, 0.9, False, jnp.float32), {}),
    "rmsprop all positional": (
        "rmsprop",
        (1e-2, 0.8, 1e-6, 0.0, False, False, 0.5, True, True),
        {},
    ),
    "adagrad positional": ("adagrad", (1e-1, 0.5, 1e-6), {}),
    "add_decayed_weights default": ("add_decayed_weights", (), {}),
    "trace positional": ("trace", (0.9, True, jnp.float32), {}),
    "scale": ("scale", (-0.5,), {}),
    "clip": ("clip", (0.5,), {}),
    "clip_by_global_norm": ("clip_by_global_norm", (0.5,), {}),
}


@pytest.mark.parametrize("case", list(SAME_CALL))
def test_a_call_that_runs_in_both_libraries_means_the_same(case: str) -> None:
    name, args, kwargs = SAME_CALL[case]
    ours = getattr(adamjax, name)(*args, **kwargs)
    theirs = getattr(optax, name)(*args, **kwargs)
    if name in ("add_decayed_weights", "trace", "scale", "clip", "clip_by_global_norm"):
        ours = adamjax.chain(ours, adamjax.sgd(0.1))
        theirs = optax.chain(theirs, optax.sgd(0.1))
    a, b = _flat_trajectory(ours), _flat_trajectory(theirs)
    chex.assert_trees_all_close(a, b, rtol=2e-6, atol=1e-7)  # the path [i] is step i + 1
    assert not np.allclose(a[-1], a[0])


def _positional_count(function: Callable[..., Any]) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(function).parameters.values())


def _optax_namesakes() -> dict[str, Callable[..., Any]]:
    """Our optimizers that optax (or optax.contrib) also has, with optax's."""
    out = {}
    for name in sorted({*catalog.ALIASES, *catalog.FAMILY}):
        for module in (optax, optax.contrib):
            if hasattr(module, name):
                out.setdefault(name, getattr(module, name))
    return out


@pytest.mark.parametrize("name", list(_optax_namesakes()))
def test_aliases_take_no_more_positional_arguments_than_optax_in_the_same_order(name: str):
    ours, theirs = getattr(adamjax, name), _optax_namesakes()[name]
    count = _positional_count(ours)
    assert count <= _positional_count(theirs)
    ours_names = list(inspect.signature(ours).parameters)[:count]
    assert ours_names == list(inspect.signature(theirs).parameters)[:count]
