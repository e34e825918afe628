"""Checkpoints: save, restore, keep training, and get exactly what uninterrupted training gives."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import aliases, presets

F32 = jnp.float32
PARAMS = {
    "dense": {"w": jnp.linspace(-1.0, 1.0, 12, dtype=F32).reshape(3, 4), "b": jnp.zeros(4, F32)},
    "scale": jnp.ones((), F32),
}
BEFORE, AFTER = 3, 2  # steps before the checkpoint (odd: mid-cycle for k = 2), after it


def _grads(step: int, params: Any) -> Any:
    """Gradients that depend on the step and on the params (a closed loop)."""
    rng = np.random.default_rng(step)
    noise = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    grads = jax.tree.map(lambda p, n: (p - 0.5 + n).astype(p.dtype), params, noise)
    if step == 1:  # one poisoned step, for the wrappers that skip it
        grads["scale"] = jnp.full_like(grads["scale"], jnp.nan)
    return grads


def _alias(name: str) -> Callable[[], Any]:
    factory = getattr(aliases, name)
    if name in ("sgd", "normalized_gradient"):
        return lambda: factory(0.01)
    return factory


def _finite_grads(step: int, params: Any) -> Any:
    grads = _grads(step, params)
    return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.25), grads)


# name -> (optimizer factory, gradient function)
CASES: dict[str, tuple[Callable[[], Any], Callable[[int, Any], Any]]] = {
    **{f"aliases.{name}": (_alias(name), _finite_grads) for name in aliases.__all__},
    "aliases.sgd-momentum": (lambda: adamjax.sgd(0.01, 0.9, nesterov=True), _finite_grads),
    "aliases.adam-schedule": (
        lambda: adamjax.adam(adamjax.schedules.warmup_cosine_decay(0.0, 0.1, 2, 10)),
        _finite_grads,
    ),
    **{
        f"presets.{name}": (getattr(presets, name), _finite_grads)
        for name in presets.__all__
        if name.startswith(("torch_", "keras_"))  # optimizers, not building blocks or states
    },
    "presets.torch_adam-amsgrad-l2": (
        lambda: presets.torch_adam(weight_decay=0.1, amsgrad=True),
        _finite_grads,
    ),
    "lazy_adam": (lambda: adamjax.lazy_adam(0.01), _finite_grads),
    "chain-skip_nonfinite": (
        lambda: adamjax.chain(adamjax.skip_nonfinite(adamjax.adamw(0.01)), adamjax.scale(0.5)),
        _grads,
    ),
    "accumulate_gradients-mid-cycle": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(0.01), 2),
        _finite_grads,
    ),
    "skip_nonfinite-accumulate_gradients": (
        lambda: adamjax.skip_nonfinite(
            adamjax.accumulate_gradients(adamjax.nadam(0.01), 2), max_consecutive_skips=3
        ),
        _grads,
    ),
    "adam-float32-moments-bfloat16-params": (
        lambda: adamjax.adam(0.01, mu_dtype=F32, nu_dtype=F32),
        _finite_grads,
    ),
}


def _run(
    step: Any, grad_fn: Callable[[int, Any], Any], params: Any, state: Any, steps: range
) -> tuple[Any, Any]:
    for i in steps:
        params, state = step(params, state, grad_fn(i, params))
    return params, state


def _jitted_step(optimizer: Any) -> Any:
    @jax.jit
    def step(params: Any, state: Any, grads: Any) -> Any:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return step


def _assert_bits_equal(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        assert x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


def _params_for(name: str) -> Any:
    if "bfloat16" in name:
        return jax.tree.map(lambda p: p.astype(jnp.bfloat16), PARAMS)
    return PARAMS


@pytest.mark.parametrize("name", list(CASES))
def test_resumed_training_is_bitwise_identical(name: str, tmp_path: Path) -> None:
    factory, grad_fn = CASES[name]
    optimizer = factory()
    step = _jitted_step(optimizer)
    params = _params_for(name)
    straight = _run(step, grad_fn, params, optimizer.init(params), range(BEFORE + AFTER))

    halfway = _run(step, grad_fn, params, optimizer.init(params), range(BEFORE))
    file = tmp_path / "checkpoint.npz"
    adamjax.save_checkpoint(file, {"params": halfway[0], "opt_state": halfway[1]})
    target = jax.eval_shape(lambda: {"params": params, "opt_state": optimizer.init(params)})
    restored = adamjax.restore_checkpoint(file, target)
    _assert_bits_equal(restored, {"params": halfway[0], "opt_state": halfway[1]})
    resumed = _run(
        step, grad_fn, restored["params"], restored["opt_state"], range(BEFORE, BEFORE + AFTER)
    )
    _assert_bits_equal(resumed, straight)
    assert any(
        np.any(np.asarray(a) != np.asarray(b))
        for a, b in zip(jax.tree.leaves(straight[0]), jax.tree.leaves(params), strict=True)
    ), "the params must have moved"


def test_batched_state_round_trips_bitwise(tmp_path: Path) -> None:
    """A vmapped optimizer: three members, each with its own learning rate and params."""
    members = 3
    rates = jnp.asarray([0.1, 0.01, 0.001], F32)
    params = jax.tree.map(lambda p: jnp.stack([p + i for i in range(members)]), PARAMS)

    def init(params: Any, lr: jax.Array) -> Any:
        return adamjax.skip_nonfinite(adamjax.adamw(lr)).init(params)

    @jax.jit
    def step(params: Any, state: Any, grads: Any, lr: jax.Array) -> Any:
        def one(p: Any, s: Any, g: Any, lr: jax.Array) -> Any:
            updates, s = adamjax.skip_nonfinite(adamjax.adamw(lr)).update(g, s, p)
            return adamjax.apply_updates(p, updates), s

        return jax.vmap(one)(params, state, grads, lr)

    def run(params: Any, state: Any, steps: range) -> Any:
        for i in steps:
            params, state = step(params, state, _grads(i, params), rates)
        return params, state

    state0 = jax.vmap(init)(params, rates)
    straight = run(params, state0, range(BEFORE + AFTER))
    halfway = run(params, state0, range(BEFORE))
    file = tmp_path / "batched.npz"
    adamjax.save_checkpoint(file, halfway)
    restored = adamjax.restore_checkpoint(file, jax.eval_shape(lambda: (params, state0)))
    assert restored[1].inner_state[0].count.shape == (members,)
    resumed = run(restored[0], restored[1], range(BEFORE, BEFORE + AFTER))
    _assert_bits_equal(resumed, straight)


def test_adam_state_has_stable_named_keys(tmp_path: Path) -> None:
    optimizer = adamjax.adam(1e-3)
    file = tmp_path / "adam.npz"
    adamjax.save_checkpoint(file, {"params": PARAMS, "opt_state": optimizer.init(PARAMS)})
    with zipfile.ZipFile(file) as archive:
        names = sorted(n.removesuffix(".npy") for n in archive.namelist())
    assert names == sorted(
        [
            "__adamjax_dtypes__",
            "['opt_state'][0].count",
            "['opt_state'][0].mu['dense']['b']",
            "['opt_state'][0].mu['dense']['w']",
            "['opt_state'][0].mu['scale']",
            "['opt_state'][0].nu['dense']['b']",
            "['opt_state'][0].nu['dense']['w']",
            "['opt_state'][0].nu['scale']",
            "['params']['dense']['b']",
            "['params']['dense']['w']",
            "['params']['scale']",
        ]
    )
    with np.load(file) as data:
        assert data["['opt_state'][0].count"].dtype == np.int32


@pytest.mark.parametrize(
    "dtype", [jnp.bfloat16, jnp.float16, jnp.float64, jnp.complex64, jnp.int8, jnp.bool_]
)
def test_every_dtype_round_trips_bit_for_bit(dtype: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5,)) * 100
    if jnp.issubdtype(dtype, jnp.complexfloating):
        values = values + 1j * rng.normal(size=(5,))
    array = jnp.asarray(values).astype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        array = array.at[0].set(jnp.nan).at[1].set(-jnp.inf).at[2].set(-0.0)
    file = tmp_path / "x.npz"
    adamjax.save_checkpoint(file, {"x": array})
    restored = adamjax.restore_checkpoint(file, {"x": jax.ShapeDtypeStruct((5,), dtype)})
    assert restored["x"].dtype == dtype
    assert np.asarray(restored["x"]).tobytes() == np.asarray(array).tobytes()


def test_keys_with_unusual_characters(tmp_path: Path) -> None:
    tree = {"a/b": jnp.ones(2, F32), "c.d": [jnp.zeros(1, F32)], "e'f": (jnp.ones((), F32),)}
    file = tmp_path / "odd.npz"
    adamjax.save_checkpoint(file, tree)
    _assert_bits_equal(adamjax.restore_checkpoint(file, tree), tree)


def test_empty_states_and_none_leaves_take_no_entry(tmp_path: Path) -> None:
    optimizer = adamjax.rmsprop(0.01)  # its moments state has mu=None
    state = optimizer.init(PARAMS)
    file = tmp_path / "rmsprop.npz"
    adamjax.save_checkpoint(file, state)
    restored = adamjax.restore_checkpoint(file, state)
    assert restored[0].mu is None
    _assert_bits_equal(restored, state)
