"""Cross-checks with optax: the same rule gives the same trajectory, and the two libraries'
transforms compose in each other's chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax

STEPS = 50


@pytest.fixture(autouse=True)
def _standard_promotion():
    """optax relies on implicit promotion (python float ** int32 count), which the suite's
    strict mode rejects; adamjax itself is checked under strict mode everywhere else."""
    with jax.numpy_dtype_promotion("standard"):
        yield


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
    "sgd": (lambda: adamjax.sgd(0.01), lambda: optax.sgd(0.01)),
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
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in a:
            np.testing.assert_allclose(
                a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=f"{name} step {step + 1} {key}"
            )
    assert not np.allclose(ours[-1]["w"], 1.0)  # the trajectory went somewhere


def test_adamjax_transform_inside_optax_chain() -> None:
    grads = _grads()
    ours = _trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), adamjax.adam(0.01)), optax.apply_updates, grads
    )
    theirs = _trajectory(
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)), optax.apply_updates, grads
    )
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6, atol=1e-7)


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
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6, atol=1e-7)
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
