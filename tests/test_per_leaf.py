"""Per-leaf hyperparameters: a tree matching the params works wherever a number does.

Every alias and preset, with every numeric hyperparameter given as a per-leaf tree, against the
float64 reference run leaf by leaf with that leaf's values."""

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
from tests.typed import unchecked

STEPS = 30
SHAPES = {"w": (3, 2), "b": (2,), "s": ()}


def per_leaf(w: float, b: float, s: float) -> dict[str, float]:
    return {"w": w, "b": b, "s": s}


LR = per_leaf(0.01, 0.05, 0.003)
B1 = per_leaf(0.9, 0.5, 0.0)
B2 = per_leaf(0.999, 0.9, 0.99)
EPS = per_leaf(1e-8, 1e-3, 1e-6)
EPS_ROOT = per_leaf(0.0, 1e-6, 1e-4)
WD = per_leaf(0.1, 0.0, 0.01)  # no decay for the bias

# name -> (adamjax transform, reference class, per-leaf reference hyperparameters); the torch
# presets annotate lr as a number or a schedule, but take a per-leaf tree like everything else
CASES: dict[str, tuple[Callable[[], Any], type, dict[str, dict[str, float]]]] = {
    "adam": (
        lambda: adamjax.adam(LR, B1, B2, EPS, eps_root=EPS_ROOT),
        ref.Adam,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, eps_root=EPS_ROOT),
    ),
    "adamw": (
        lambda: adamjax.adamw(LR, B1, B2, EPS, EPS_ROOT, weight_decay=WD),
        ref.AdamW,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, eps_root=EPS_ROOT, weight_decay=WD),
    ),
    "amsgrad": (
        lambda: adamjax.amsgrad(LR, B1, B2, EPS, eps_root=EPS_ROOT),
        ref.AMSGrad,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, eps_root=EPS_ROOT),
    ),
    "adamax": (
        lambda: adamjax.adamax(LR, B1, B2, EPS),
        ref.Adamax,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS),
    ),
    "nadam": (
        lambda: adamjax.nadam(LR, per_leaf(0.9, 0.5, 0.7), B2, EPS, eps_root=EPS_ROOT),
        ref.NAdam,
        dict(lr=LR, b1=per_leaf(0.9, 0.5, 0.7), b2=B2, eps=EPS, eps_root=EPS_ROOT),
    ),
    "sgd-momentum": (
        lambda: adamjax.sgd(LR, per_leaf(0.9, 0.0, 0.5)),
        ref.SGD,
        dict(lr=LR, momentum=per_leaf(0.9, 0.0, 0.5)),
    ),
    "sgd-nesterov": (
        lambda: adamjax.sgd(LR, per_leaf(0.9, 0.0, 0.5), nesterov=True),
        ref.SGD,
        dict(lr=LR, momentum=per_leaf(0.9, 0.0, 0.5), nesterov=per_leaf(True, True, True)),
    ),
    "rmsprop": (
        lambda: adamjax.rmsprop(LR, B2, EPS, eps_in_sqrt=False),
        ref.RMSProp,
        dict(lr=LR, decay=B2, eps=EPS),
    ),
    "adagrad": (
        lambda: adamjax.adagrad(LR, per_leaf(0.0, 0.1, 1.0), EPS_ROOT),
        ref.Adagrad,
        dict(
            lr=LR,
            initial_accumulator_value=per_leaf(0.0, 0.1, 1.0),
            eps=per_leaf(0.0, 0.0, 0.0),
            eps_root=EPS_ROOT,
        ),
    ),
    "normalized-gradient": (
        lambda: adamjax.normalized_gradient(LR, EPS),
        ref.NormalizedGradient,
        dict(lr=LR, eps=EPS),
    ),
    "torch-adam-l2": (
        lambda: presets.torch_adam(unchecked(LR), (B1, B2), EPS, weight_decay=WD),
        ref.AdamL2,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, weight_decay=WD),
    ),
    "torch-adam-amsgrad": (
        lambda: presets.torch_adam(unchecked(LR), (B1, B2), EPS, amsgrad=True),
        ref.AMSGradTorch,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS),
    ),
    "torch-adamw": (
        lambda: presets.torch_adamw(unchecked(LR), (B1, B2), EPS, weight_decay=WD),
        ref.AdamW,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, weight_decay=WD),
    ),
    "keras-adam": (
        lambda: presets.keras_adam(LR, B1, B2, EPS),
        ref.KerasAdam,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS),
    ),
    "keras-adam-amsgrad": (
        lambda: presets.keras_adam(LR, B1, B2, EPS, amsgrad=True),
        ref.KerasAdam,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, amsgrad=per_leaf(True, True, True)),
    ),
    "chain-decay-mask-scale": (
        lambda: adamjax.chain(
            adamjax.moments(B1, B2),
            adamjax.bias_correction(),
            adamjax.normalize(EPS, EPS_ROOT),
            adamjax.add_decayed_weights(per_leaf(0.1, 0.2, 0.3), per_leaf(True, False, True)),
            adamjax.scale(jax.tree.map(lambda x: -x, LR)),
        ),
        ref.AdamW,
        dict(lr=LR, b1=B1, b2=B2, eps=EPS, eps_root=EPS_ROOT, weight_decay=per_leaf(0.1, 0, 0.3)),
    ),
}


JITTED = {"adamw", "nadam", "adagrad", "keras-adam", "chain-decay-mask-scale"}


def _problem(seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    scales = np.exp(rng.normal(size=STEPS))
    grads = [
        {k: scales[i] * rng.normal(size=s) + 0.3 for k, s in SHAPES.items()} for i in range(STEPS)
    ]
    return params, grads


@pytest.mark.parametrize("name", list(CASES))
def test_per_leaf_trees_match_the_reference_leaf_by_leaf(name: str) -> None:
    factory, reference_class, hyperparameters = CASES[name]
    params, grads = _problem()
    transform = factory()

    def step(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    if name in JITTED:  # the rest run eagerly: the same code, without a compile per case
        step = jax.jit(step)
    mine = jax.tree.map(jnp.asarray, params)
    state = transform.init(mine)
    history = []
    for g in grads:
        mine, state = step(mine, state, jax.tree.map(jnp.asarray, g))
        history.append(jax.device_get(mine))
    for key in SHAPES:
        leaf_hp = {name: values[key] for name, values in hyperparameters.items()}
        expected = ref.run(reference_class, params[key], [g[key] for g in grads], **leaf_hp)
        for t, (got, want) in enumerate(zip(history, expected, strict=True)):
            np.testing.assert_allclose(
                got[key], want, rtol=1e-10, atol=1e-12, err_msg=f"{name}: step {t + 1}, {key}"
            )


def test_the_leaves_really_use_different_values() -> None:
    """Guard against a vacuous pass: the same run with w's values everywhere differs."""
    params, grads = _problem()
    uniform = {k: LR["w"] for k in SHAPES}
    a = ref.run(ref.Adam, params["b"], [g["b"] for g in grads], lr=LR["b"])[-1]
    b = ref.run(ref.Adam, params["b"], [g["b"] for g in grads], lr=uniform["b"])[-1]
    assert np.max(np.abs(a - b)) > 1e-2
