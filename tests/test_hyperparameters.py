"""Hyperparameters are data: numbers, arrays, tracers and per-leaf trees; checked when concrete."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import schedules
from tests import reference as ref

PARAMS = {"w": jnp.ones(3), "b": jnp.zeros(2)}


def _grads(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=3)), "b": jnp.asarray(rng.normal(size=2))}


def test_new_learning_rate_value_does_not_recompile() -> None:
    traces = []

    @jax.jit
    def step(params, state, grads, lr, b1, b2, eps):
        traces.append(None)
        opt = adamjax.adam(lr, b1, b2, eps)
        updates, state = opt.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    state = adamjax.adam(0.1).init(PARAMS)
    params = PARAMS
    for i, lr in enumerate([0.1, 0.01, 0.3, 1e-4]):
        params, state = step(params, state, _grads(i), lr, 0.9 - 0.1 * i, 0.99, 1e-8 * (i + 1))
    assert len(traces) == 1


def test_traced_hyperparameters_match_concrete_ones() -> None:
    grads = _grads(0)

    @jax.jit
    def traced(lr, b1, b2, eps, wd):
        opt = adamjax.adamw(lr, b1, b2, eps, weight_decay=wd)
        return opt.update(grads, opt.init(PARAMS), PARAMS)[0]

    concrete = adamjax.adamw(0.05, 0.8, 0.95, 1e-3, weight_decay=0.1)
    expected, _ = concrete.update(grads, concrete.init(PARAMS), PARAMS)
    got = traced(0.05, 0.8, 0.95, 1e-3, 0.1)
    for key in PARAMS:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12)


def test_vmap_over_learning_rates() -> None:
    grads = _grads(1)

    def first_update(lr):
        opt = adamjax.adam(lr)
        return opt.update(grads, opt.init(PARAMS), PARAMS)[0]["w"]

    rates = jnp.asarray([0.1, 0.2, 0.4])
    out = jax.vmap(first_update)(rates)
    expected = -np.outer(np.asarray(rates), np.sign(np.asarray(grads["w"])))
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: adamjax.adam(0.1, b1=1.0), r"b1 must be in \[0.0, 1.0\), got 1.0"),
        (lambda: adamjax.adam(0.1, b1=-0.1), r"b1 must be in \[0.0, 1.0\), got -0.1"),
        (lambda: adamjax.adam(0.1, b2=1.5), r"b2 must be in \[0.0, 1.0\), got 1.5"),
        (lambda: adamjax.adam(0.1, eps=-1e-8), r"eps must be >= 0.0"),
        (lambda: adamjax.adam(0.1, eps_root=-1.0), r"eps_root must be >= 0.0"),
        (lambda: adamjax.adam(-0.1), r"learning_rate must be >= 0.0"),
        (lambda: adamjax.adam(float("nan")), r"learning_rate must be >= 0.0, got nan"),
        (lambda: adamjax.adamw(0.1, weight_decay=-1.0), r"weight_decay must be >= 0.0"),
        (lambda: adamjax.sgd(0.1, momentum=-0.5), r"^momentum must be >= 0.0"),
        (lambda: adamjax.rmsprop(0.1, decay=1.0), r"^decay must be in \[0.0, 1.0\)"),
        (lambda: adamjax.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator"),
        (
            lambda: adamjax.adam(0.1, b1={"w": 0.9, "b": 1.2}),
            r"b1\['b'\] must be in \[0.0, 1.0\), got 1.2",
        ),
        (
            lambda: adamjax.adam(jnp.asarray([0.1, -0.2])),
            r"learning_rate must be >= 0.0",
        ),
        (lambda: schedules.cosine_decay(0.1, 0), "decay_steps must be a positive int"),
        (lambda: schedules.warmup_cosine_decay(0.0, 0.1, 10, 5), "must be greater than"),
    ],
)
def test_out_of_range_values_name_the_argument(factory, message) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_non_numeric_hyperparameter_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="b1 must be a number or an array"):
        adamjax.adam(0.1, b1="0.9")


def test_per_leaf_hyperparameters_match_reference_per_leaf() -> None:
    lr = {"w": 0.01, "b": 0.1}
    b1 = {"w": 0.9, "b": 0.5}
    opt = adamjax.adam(lr, b1=b1)
    params = jax.tree.map(lambda x: x + 0.5, PARAMS)
    state = opt.init(params)
    expected = {k: ref.Adam(np.asarray(v), lr=lr[k], b1=b1[k]) for k, v in params.items()}
    theirs = {k: np.asarray(v) for k, v in params.items()}
    for i in range(20):
        grads = _grads(i)
        updates, state = opt.update(grads, state, params)
        params = adamjax.apply_updates(params, updates)
        for k in theirs:
            theirs[k] = expected[k].step(theirs[k], np.asarray(grads[k]))
            np.testing.assert_allclose(params[k], theirs[k], rtol=1e-10, atol=1e-12)


def test_per_leaf_tree_that_does_not_match_is_named() -> None:
    opt = adamjax.adam({"w": 0.1, "c": 0.2})
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match=r"learning_rate\['c'\] is not in params"):
        opt.update(_grads(0), state, PARAMS)


def test_schedule_sees_count_before_increment_and_bias_correction_sees_t() -> None:
    seen = []

    def schedule(count):
        seen.append(int(count))
        return 0.1

    opt = adamjax.adam(schedule)
    state = opt.init(PARAMS)
    for i in range(3):
        _, state = opt.update(_grads(i), state, PARAMS)
    assert seen == [0, 1, 2]
    assert int(state[0].count) == 3  # the moments' t after three updates


def test_schedule_returning_an_array_is_rejected() -> None:
    opt = adamjax.adam(lambda count: jnp.ones(3) * 0.1)
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match=r"schedule returned a value of shape \(3,\)"):
        opt.update(_grads(0), state, PARAMS)
