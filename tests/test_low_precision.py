"""Low precision and long runs: bfloat16/float16 params, float32 moments, eps, the int32 count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets
from tests import catalog
from tests import reference as ref

INT32_MAX = np.iinfo(np.int32).max
LOW = {"bfloat16": jnp.bfloat16, "float16": jnp.float16}
# relative size of one unit in the last place, and the smallest subnormal
ULP = {"bfloat16": 2.0**-7, "float16": 2.0**-10}
TINY = {"bfloat16": 2.0**-133, "float16": 2.0**-24}


def _optimizers() -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    for name in catalog.ALIASES:
        factory = getattr(adamjax, name)
        out[name] = (
            (lambda f=factory: f(1e-3)) if name in ("sgd", "normalized_gradient") else factory
        )
    for name in presets.__all__:
        if name.startswith(("torch_", "keras_")):
            out[f"presets.{name}"] = getattr(presets, name)
    out["lazy_adam"] = adamjax.lazy_adam
    return out


OPTIMIZERS = _optimizers()


def _grad_sequence(seed: int, steps: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.exp(rng.normal()) * rng.normal(size=shape) + 0.1 for _ in range(steps)]


@pytest.mark.parametrize("low", list(LOW))
def test_low_precision_params_with_float32_moments_track_the_float64_reference(low: str) -> None:
    """Each update is the float64 reference's, rounded once to the param dtype."""
    dtype = LOW[low]
    params = {"w": jnp.zeros((4, 5), dtype)}
    optimizer = adamjax.adam(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    state = optimizer.init(params)
    assert state[0].mu["w"].dtype == jnp.float32
    assert state[0].nu["w"].dtype == jnp.float32
    reference = ref.Adam(np.zeros((4, 5)), lr=1e-2)
    step = jax.jit(optimizer.update)
    for g in _grad_sequence(0, 30, (4, 5)):
        grads = {"w": jnp.asarray(g).astype(dtype)}
        expected = reference.step(np.zeros((4, 5)), np.asarray(grads["w"], np.float64))
        updates, state = step(grads, state, params)
        params = adamjax.apply_updates(params, updates)
        assert updates["w"].dtype == dtype
        assert params["w"].dtype == dtype
        np.testing.assert_allclose(
            np.asarray(updates["w"], np.float64), expected, rtol=ULP[low], atol=TINY[low]
        )
        # float32 storage: rounding relative to the largest entry
        np.testing.assert_allclose(
            state[0].mu["w"], reference.m, rtol=1e-5, atol=1e-6 * np.max(np.abs(reference.m))
        )
        np.testing.assert_allclose(
            state[0].nu["w"], reference.v, rtol=1e-5, atol=1e-6 * np.max(reference.v)
        )


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adamax", "rmsprop", "adagrad", "lazy_adam"])
def test_small_float16_gradients_get_ordinary_updates(name: str) -> None:
    """(1 - b2) g^2 rounds to zero in float16 for |g| < 5e-3, and m / (0 + eps) overflows.

    The default float32 second moment for float16 params prevents it: the first update is the
    usual one (-lr * sign(g) for the Adam family; RMSProp and Adagrad, with eps and the
    accumulator's start under the root, as written out below).
    """
    params = {"w": jnp.zeros(4, jnp.float16)}
    grads = {"w": jnp.asarray([1e-3, -1e-3, 2.5e-3, -4e-3], jnp.float16)}
    optimizer = OPTIMIZERS[name]()
    state = optimizer.init(params)
    updates, state = optimizer.update(grads, state, params)
    moments = state if name == "lazy_adam" else state[0]
    assert moments.nu["w"].dtype == jnp.float32
    assert np.all(np.asarray(moments.nu["w"]) > 0)
    g = np.asarray(grads["w"], np.float64)
    if name == "rmsprop":  # lr 1e-2, decay 0.9, eps 1e-8 under the root
        expected = -1e-2 * g / np.sqrt((1 - 0.9) * g**2 + 1e-8)
    elif name == "adagrad":  # lr 1e-2, start 0.1, eps 1e-7 under the root
        expected = -1e-2 * g / np.sqrt(0.1 + g**2 + 1e-7)
    else:
        expected = -{"adamax": 2e-3}.get(name, 1e-3) * np.sign(g)
    np.testing.assert_allclose(np.asarray(updates["w"], np.float64), expected, rtol=5e-3)


def _near_the_limit(state: Any) -> Any:
    """Every int32 scalar counter in ``state`` set to INT32_MAX - 2."""

    def bump(leaf: Any) -> Any:
        if jnp.result_type(leaf) == jnp.int32 and jnp.ndim(leaf) == 0:
            return jnp.asarray(INT32_MAX - 2, jnp.int32)
        return leaf

    return jax.tree.map(bump, state)


def _counters(state: Any) -> list[int]:
    return [
        int(leaf)
        for leaf in jax.tree.leaves(state)
        if jnp.result_type(leaf) == jnp.int32 and jnp.ndim(leaf) == 0
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float16_zero_gradients_and_the_int32_limit_stay_finite(name: str) -> None:
    """Every optimizer, float16 params: zero-gradient steps (eps underflows in float16) give
    finite updates; from a state whose counters sit near the int32 maximum, the counters
    saturate and the updates stay finite."""
    params = {"w": jnp.ones((2, 3), jnp.float16), "b": jnp.zeros(3, jnp.float16)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    nonzero = {"w": jnp.full((2, 3), 0.5, jnp.float16), "b": jnp.full(3, -0.25, jnp.float16)}
    optimizer = OPTIMIZERS[name]()
    step = jax.jit(optimizer.update)
    for state in (optimizer.init(params), _near_the_limit(optimizer.init(params))):
        p = params
        for grads in [zeros, zeros, nonzero, zeros, nonzero]:
            updates, state = step(grads, state, p)
            p = adamjax.apply_updates(p, updates)
            assert bool(adamjax.all_finite(updates)), name
            assert bool(adamjax.all_finite(state)), name
        assert bool(adamjax.all_finite(p)), name
    assert all(count == INT32_MAX for count in _counters(state)), name
