"""Every alias and hand-built chain against the float64 NumPy reference, step by step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets
from tests import reference as ref

STEPS = 100
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def _problem(dtype: Any, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    scales = np.exp(rng.normal(size=STEPS))  # gradients whose size varies from step to step
    grads = [
        {k: scales[i] * rng.normal(size=s) + 0.3 for k, s in SHAPES.items()} for i in range(STEPS)
    ]
    cast = lambda tree: {k: np.asarray(v, dtype=dtype) for k, v in tree.items()}  # noqa: E731
    return cast(params), [cast(g) for g in grads]


def _schedule(count: Any) -> Any:
    return 0.02 / (1.0 + 0.05 * jnp.asarray(count).astype(jnp.float64))


# name -> (adamjax transform factory, reference class, reference hyperparameters)
CASES: dict[str, tuple[Callable[[], Any], type, dict]] = {
    "adam": (lambda: adamjax.adam(0.01, 0.9, 0.999, 1e-8), ref.Adam, dict(lr=0.01)),
    "adam-b1-b2-eps": (
        lambda: adamjax.adam(0.03, 0.8, 0.99, 1e-3),
        ref.Adam,
        dict(lr=0.03, b1=0.8, b2=0.99, eps=1e-3),
    ),
    "adam-eps-root": (
        lambda: adamjax.adam(0.01, eps=0.0, eps_root=1e-6),
        ref.Adam,
        dict(lr=0.01, eps=0.0, eps_root=1e-6),
    ),
    "adam-schedule": (lambda: adamjax.adam(_schedule), ref.Adam, dict(lr=_schedule)),
    "adam-chain": (
        lambda: adamjax.chain(
            adamjax.moments(0.9, 0.999),
            adamjax.bias_correction(),
            adamjax.normalize(1e-8),
            adamjax.scale_by_learning_rate(0.01),
        ),
        ref.Adam,
        dict(lr=0.01),
    ),
    "adam-uncorrected-chain": (
        lambda: adamjax.chain(
            adamjax.moments(0.9, 0.999),
            adamjax.normalize(1e-8),
            adamjax.scale_by_learning_rate(0.01),
        ),
        ref.AdamUncorrected,
        dict(lr=0.01),
    ),
    "adamw": (
        lambda: adamjax.adamw(0.01, weight_decay=0.1),
        ref.AdamW,
        dict(lr=0.01, weight_decay=0.1),
    ),
    "adamw-chain": (
        lambda: adamjax.chain(
            adamjax.moments(),
            adamjax.bias_correction(),
            adamjax.normalize(),
            adamjax.add_decayed_weights(0.1),
            adamjax.scale_by_learning_rate(0.01),
        ),
        ref.AdamW,
        dict(lr=0.01, weight_decay=0.1),
    ),
    "amsgrad": (lambda: adamjax.amsgrad(0.01), ref.AMSGrad, dict(lr=0.01)),
    "amsgrad-torch-chain": (
        lambda: adamjax.chain(
            adamjax.moments(),
            adamjax.max_second_moment(),
            adamjax.bias_correction(),
            adamjax.normalize(),
            adamjax.scale_by_learning_rate(0.01),
        ),
        ref.AMSGradTorch,
        dict(lr=0.01),
    ),
    "adamax": (lambda: adamjax.adamax(0.01), ref.Adamax, dict(lr=0.01)),
    "nadam": (lambda: adamjax.nadam(0.01), ref.NAdam, dict(lr=0.01)),
    "sgd": (lambda: adamjax.sgd(0.01), ref.SGD, dict(lr=0.01)),
    "sgd-momentum": (lambda: adamjax.sgd(0.01, 0.9), ref.SGD, dict(lr=0.01, momentum=0.9)),
    "sgd-nesterov": (
        lambda: adamjax.sgd(0.01, 0.9, nesterov=True),
        ref.SGD,
        dict(lr=0.01, momentum=0.9, nesterov=True),
    ),
    "rmsprop-torch-style": (
        lambda: adamjax.rmsprop(0.01, eps_in_sqrt=False),
        ref.RMSProp,
        dict(lr=0.01),
    ),
    "rmsprop": (
        lambda: adamjax.rmsprop(0.01, 0.95, 1e-8),
        ref.RMSProp,
        dict(lr=0.01, decay=0.95, eps=0.0, eps_root=1e-8),
    ),
    "adagrad-torch-style": (
        lambda: adamjax.adagrad(0.1, 0.0, 1e-10, eps_in_sqrt=False),
        ref.Adagrad,
        dict(lr=0.1),
    ),
    "adagrad": (
        lambda: adamjax.adagrad(0.1),
        ref.Adagrad,
        dict(lr=0.1, initial_accumulator_value=0.1, eps=0.0, eps_root=1e-7),
    ),
    "normalized-gradient": (
        lambda: adamjax.normalized_gradient(0.01),
        ref.NormalizedGradient,
        dict(lr=0.01),
    ),
    "torch-adam-l2": (
        lambda: presets.torch_adam(0.01, weight_decay=0.1),
        ref.AdamL2,
        dict(lr=0.01, weight_decay=0.1),
    ),
    "torch-adam-amsgrad": (
        lambda: presets.torch_adam(0.01, amsgrad=True),
        ref.AMSGradTorch,
        dict(lr=0.01),
    ),
    "torch-adamw": (
        lambda: presets.torch_adamw(0.01, weight_decay=0.1),
        ref.AdamW,
        dict(lr=0.01, weight_decay=0.1),
    ),
    "torch-nadam": (lambda: presets.torch_nadam(0.01), ref.TorchNAdam, dict(lr=0.01)),
    "keras-adam": (lambda: presets.keras_adam(0.01), ref.KerasAdam, dict(lr=0.01)),
    "keras-adam-amsgrad": (
        lambda: presets.keras_adam(0.01, amsgrad=True),
        ref.KerasAdam,
        dict(lr=0.01, amsgrad=True),
    ),
}

# float64 under x64: differences are rounding only. float32: per-dtype tolerance.
TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}


def _run_adamjax(transform: Any, params: dict, grads: list[dict]) -> list[dict]:
    state = transform.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    history = []
    for g in grads:
        params, state = step(params, state, {k: jnp.asarray(v) for k, v in g.items()})
        history.append(params)
    return history


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference_every_step(name: str, dtype: Any) -> None:
    factory, reference_class, hyperparameters = CASES[name]
    params, grads = _problem(dtype)
    ours = _run_adamjax(factory(), {k: jnp.asarray(v) for k, v in params.items()}, grads)
    theirs = ref.run_tree(reference_class, params, grads, **hyperparameters)
    assert len(ours) == len(theirs) == STEPS
    for step, (mine, expected) in enumerate(zip(ours, theirs, strict=True)):
        for key in SHAPES:
            assert mine[key].dtype == dtype, (name, step, key)
            np.testing.assert_allclose(
                np.asarray(mine[key], dtype=np.float64),
                expected[key],
                rtol=TOLERANCE[dtype]["rtol"],
                atol=TOLERANCE[dtype]["atol"],
                err_msg=f"{name}: step {step + 1}, leaf {key!r}",
            )


def test_reference_params_actually_move() -> None:
    """Guard against a vacuous comparison: 100 steps move every coordinate of every leaf."""
    params, grads = _problem(np.float64)
    final = ref.run_tree(ref.Adam, params, grads, lr=0.01)[-1]
    for key in SHAPES:
        assert np.min(np.abs(final[key] - params[key])) > 0.02


def test_closed_loop_quadratic_matches_reference() -> None:
    """Gradients that depend on the params: Adam on a quadratic, 100 steps, float64."""
    target = np.linspace(-1.0, 2.0, 6)
    scale = np.linspace(0.1, 10.0, 6)
    params = np.zeros(6)
    opt = ref.Adam(params, lr=0.05)
    expected = params
    transform = adamjax.adam(0.05)
    mine = jnp.asarray(params)
    state = transform.init(mine)
    for _ in range(STEPS):
        expected = opt.step(expected, scale * (expected - target))
        updates, state = transform.update(scale * (mine - target), state, mine)
        mine = adamjax.apply_updates(mine, updates)
        np.testing.assert_allclose(np.asarray(mine), expected, rtol=1e-10, atol=1e-12)
