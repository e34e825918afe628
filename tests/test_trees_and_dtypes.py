"""Pytree shapes, dtypes, jit, vmap and compilation behaviour for every alias."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets

ALIASES: dict[str, Callable[[], Any]] = {
    "adam": lambda: adamjax.adam(0.01),
    "adamw": lambda: adamjax.adamw(0.01, weight_decay=0.1),
    "amsgrad": lambda: adamjax.amsgrad(0.01),
    "adamax": lambda: adamjax.adamax(0.01),
    "nadam": lambda: adamjax.nadam(0.01),
    "sgd": lambda: adamjax.sgd(0.01),
    "sgd-momentum": lambda: adamjax.sgd(0.01, 0.9, nesterov=True),
    "rmsprop": lambda: adamjax.rmsprop(0.01),
    "adagrad": lambda: adamjax.adagrad(0.01),
    "normalized-gradient": lambda: adamjax.normalized_gradient(0.01),
    "torch-adam": lambda: presets.torch_adam(0.01, weight_decay=0.1, amsgrad=True),
    "keras-adam": lambda: presets.keras_adam(0.01),
}

TREES: dict[str, Callable[[Any], Any]] = {
    "dict": lambda x: {"a": x((3,)), "b": x((2, 2))},
    "list": lambda x: [x((3,)), x((1,))],
    "tuple": lambda x: (x((2,)), x((2, 3))),
    "nested": lambda x: {"enc": [x((2,)), {"w": x((2, 2))}], "dec": (x((1,)),)},
    "none-leaves": lambda x: {"a": x((3,)), "frozen": None, "b": [None, x((2,))]},
    "scalars": lambda x: {"s": x(()), "t": x(())},
    "empty": lambda x: {},
}


def _filled(value: float, dtype: Any, seed: int = 0) -> Callable[[tuple], jax.Array]:
    rng = np.random.default_rng(seed)

    def make(shape: tuple) -> jax.Array:
        data = value + rng.normal(size=shape)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            data = data + 1j * rng.normal(size=shape)
        return jnp.asarray(data).astype(dtype)

    return make


def _dtypes(tree: Any) -> list:
    return [leaf.dtype for leaf in jax.tree.leaves(tree)]


# every alias on the nested tree, and a few aliases on every tree shape
MATRIX = [(alias, "nested") for alias in ALIASES] + [
    (alias, tree)
    for alias in ("adam", "sgd-momentum", "torch-adam")
    for tree in TREES
    if tree != "nested"
]


@pytest.mark.parametrize(("alias", "tree"), MATRIX)
def test_jit_equals_eager_and_second_step_does_not_recompile(alias: str, tree: str) -> None:
    opt = ALIASES[alias]()
    params = TREES[tree](_filled(1.0, jnp.float32, 0))
    grads = [TREES[tree](_filled(0.0, jnp.float32, s)) for s in (1, 2, 3)]

    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return adamjax.apply_updates(params, updates), state

    jitted = jax.jit(chex.assert_max_traces(step, n=1))  # the eager calls below are not traces
    eager_p, eager_s = params, opt.init(params)
    jit_p, jit_s = params, opt.init(params)
    state_dtypes = _dtypes(eager_s)
    for g in grads:
        eager_p, eager_s = step(eager_p, eager_s, g)
        jit_p, jit_s = jitted(jit_p, jit_s, g)
        assert _dtypes(jit_s) == state_dtypes  # state dtypes never change
    assert jax.tree.structure(jit_p) == jax.tree.structure(params)
    chex.assert_trees_all_close(eager_p, jit_p, rtol=1e-5, atol=1e-6)
    jitted(jit_p, jit_s, grads[0])  # one more step: still the first trace


@pytest.mark.parametrize("alias", list(ALIASES))
def test_vmap_over_a_leading_axis_equals_a_loop(alias: str) -> None:
    opt = ALIASES[alias]()
    members = 4
    params = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(members, 3, 2)))}
    grads = [
        {"w": jnp.asarray(np.random.default_rng(s).normal(size=(members, 3, 2)))}
        for s in range(1, 6)
    ]

    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return adamjax.apply_updates(params, updates), state

    batched_step, single_step = jax.jit(jax.vmap(step)), jax.jit(step)
    batched_p, batched_s = params, jax.vmap(opt.init)(params)
    for g in grads:
        batched_p, batched_s = batched_step(batched_p, batched_s, g)
    for i in range(members):
        p = {"w": params["w"][i]}
        s = opt.init(p)
        for g in grads:
            p, s = single_step(p, s, {"w": g["w"][i]})
        np.testing.assert_allclose(batched_p["w"][i], p["w"], rtol=1e-12, atol=1e-14)


DTYPE_CASES = {
    "float32": (jnp.float32, {}),
    "float64": (jnp.float64, {}),
    "bfloat16-with-float32-moments": (
        jnp.bfloat16,
        {"mu_dtype": jnp.float32, "nu_dtype": jnp.float32},
    ),
    "complex64": (jnp.complex64, {}),
}


@pytest.mark.parametrize("case", list(DTYPE_CASES))
@pytest.mark.parametrize(
    "alias", ["adam", "adamw", "amsgrad", "adamax", "nadam", "sgd-momentum", "rmsprop", "adagrad"]
)
def test_dtypes(alias: str, case: str) -> None:
    dtype, moment_dtypes = DTYPE_CASES[case]
    takes_moment_dtypes = alias in ("adam", "adamw", "amsgrad", "nadam")
    if moment_dtypes and takes_moment_dtypes:
        opt = getattr(adamjax, alias)(0.01, **moment_dtypes)
    else:
        opt = ALIASES[alias]()
    params = TREES["nested"](_filled(1.0, dtype, 0))
    state = opt.init(params)
    state_dtypes = _dtypes(state)
    if moment_dtypes and takes_moment_dtypes:
        moments = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim]
        assert moments and all(leaf.dtype == jnp.float32 for leaf in moments)
    for seed in range(3):
        grads = TREES["nested"](_filled(0.0, dtype, seed + 1))
        updates, state = jax.jit(opt.update)(grads, state, params)
        assert _dtypes(updates) == _dtypes(grads)  # updates keep the grads' dtype
        assert _dtypes(state) == state_dtypes
        params = adamjax.apply_updates(params, updates)
        assert all(d == dtype for d in _dtypes(params))
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params))


def test_complex_adam_matches_reference() -> None:
    from tests import reference as ref

    rng = np.random.default_rng(0)
    x = rng.normal(size=4) + 1j * rng.normal(size=4)
    opt = adamjax.adam(0.05)
    ours = jnp.asarray(x, jnp.complex128)
    state = opt.init(ours)
    theirs = ref.Adam(x, lr=0.05)
    expected = x
    for _ in range(30):
        g = rng.normal(size=4) + 1j * rng.normal(size=4)
        updates, state = opt.update(jnp.asarray(g), state, ours)
        ours = adamjax.apply_updates(ours, updates)
        expected = theirs.step(expected, g)
        np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-12, atol=1e-12)
    assert state[0].nu.dtype == jnp.float64  # the second moment of a complex leaf is real
