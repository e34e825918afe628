"""The folded bias correction that keras_adam and lazy_adam share, on its own: the float64
reference of Keras' rule, the step its schedule sees, what it refuses; and lazy_adam's
row freezing with a mask given as arrays."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax._folded_correction import folded_correction_step
from tests import reference as ref


def _problem(seed: int, steps: int = 12) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    grads = [
        {k: np.exp(rng.normal()) * rng.normal(size=v.shape) + 0.1 for k, v in params.items()}
        for _ in range(steps)
    ]
    return params, grads


def _run(optimizer: Any, params: dict, grads: list[dict]) -> list[dict]:
    step = jax.jit(optimizer.update)
    x = {k: jnp.asarray(v) for k, v in params.items()}
    state, history = optimizer.init(x), []
    for g in grads:
        updates, state = step({k: jnp.asarray(v) for k, v in g.items()}, state, x)
        x = adamjax.apply_updates(x, updates)
        history.append({k: np.asarray(v) for k, v in x.items()})
    return history


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_after_moments_it_is_the_keras_rule_of_the_reference(amsgrad: bool) -> None:
    params, grads = _problem(0)
    lr = {"w": 0.02, "b": 0.05}  # one learning rate per leaf
    maximum = [adamjax.max_second_moment()] if amsgrad else []
    optimizer = adamjax.chain(
        adamjax.moments(0.8, 0.99), *maximum, folded_correction_step(lr, 1e-3)
    )
    for key in params:
        expected = ref.run(
            ref.KerasAdam,
            params[key],
            [g[key] for g in grads],
            lr=lr[key],
            b1=0.8,
            b2=0.99,
            eps=1e-3,
            amsgrad=amsgrad,
        )
        got = [x[key] for x in _run(optimizer, params, grads)]
        np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-12, atol=1e-14)


def test_a_schedule_sees_the_steps_already_taken() -> None:
    seen: list[int] = []

    def schedule(count: jax.Array) -> jax.Array:
        seen.append(int(count))
        return jnp.asarray(0.1, jnp.float64)

    optimizer = adamjax.chain(adamjax.moments(), folded_correction_step(schedule, 1e-7))
    params = jnp.zeros(2, jnp.float64)
    state = optimizer.init(params)
    for _ in range(3):
        _, state = optimizer.update(jnp.ones(2, jnp.float64), state, params)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize(
    "stages",
    [
        [adamjax.moments(), adamjax.bias_correction()],
        [adamjax.moments(None, 0.9)],
        [adamjax.moments(nesterov=True)],
        [adamjax.sum_of_squares()],
        [adamjax.infinity_moments()],
    ],
    ids=["corrected", "no-first-moment", "nesterov", "running-sum", "infinity-norm"],
)
def test_it_refuses_moments_it_cannot_fold(stages: list) -> None:
    optimizer = adamjax.chain(*stages, folded_correction_step(0.1, 1e-7))
    params = jnp.ones(3)
    with pytest.raises(TypeError, match=r"^folded_correction_step\(\) folds the bias correction"):
        optimizer.update(jnp.ones(3), optimizer.init(params), params)


def test_it_takes_moment_estimates_not_gradients() -> None:
    with pytest.raises(TypeError, match=r"transform 1 \(folded_correction_step\(\)\) takes mom"):
        adamjax.chain(adamjax.scale(1.0), folded_correction_step(0.1, 1e-7))
    step = folded_correction_step(0.1, 1e-7)
    with pytest.raises(TypeError, match=r"^folded_correction_step\(\) takes moment estimates"):
        step.update(jnp.ones(2), step.init(jnp.ones(2)))


def test_a_mask_of_arrays_under_jit_freezes_exactly_the_leaves_marked_true() -> None:
    """A bool array in the mask (traced under jit) decides as a Python bool does."""
    rng = np.random.default_rng(5)
    params = {"table": rng.normal(size=(5, 2)), "bias": rng.normal(size=2)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(4)]
    for g in grads[1:]:  # from step 2 on, table rows 0 and 1 and bias[0] get no gradient
        g["table"][:2] = 0.0
        g["bias"][0] = 0.0

    def run(mask: dict) -> list[dict]:
        return _run(adamjax.lazy_adam(0.05, mask=mask), params, grads)

    arrays = run({"table": jnp.asarray(False), "bias": jnp.asarray(True)})
    bools = run({"table": False, "bias": True})
    for a, b in zip(arrays, bools, strict=True):
        for key in params:
            assert a[key].tobytes() == b[key].tobytes()
    # after step 1, the lazy leaf keeps the entry without gradient; the other one moves on
    after_first, last = bools[0], bools[-1]
    assert last["bias"][0] == after_first["bias"][0]
    assert last["bias"][1] != after_first["bias"][1]
    assert np.all(last["table"][:2] != after_first["table"][:2])
