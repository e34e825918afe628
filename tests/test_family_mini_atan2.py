"""Adam-mini (mini_moments) and Adam-atan2 (atan2_normalize) against float64 NumPy references."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamjax import (
    MiniMomentsState,
    adam,
    adam_atan2,
    adam_mini,
    atan2_normalize,
    bias_correction,
    chain,
    infinity_moments,
    mini_moments,
    per_row,
    update_clipping,
)
from tests.family_checks import check_batch_equals_loop_and_reference
from tests.typed import unchecked

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy references, one array at a time (no jax or adamjax).


def _abs_sq(x: np.ndarray) -> np.ndarray:
    return np.real(x * np.conj(x))


class NumpyAdamMini:
    """Zhang et al. 2024, Algorithm 1: Adam's m per parameter; v per block, the moving average
    of the block's mean of g^2; both bias-corrected; decoupled decay times the learning rate.
    ``axes`` are the axes a block spans (all: one block per array)."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, wd, axes=None):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.axes = tuple(range(len(shape))) if axes is None else tuple(axes)
        self.m, self.t = np.zeros(shape, dtype), 0
        self.v = np.zeros([1 if i in self.axes else n for i, n in enumerate(shape)])

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        block_mean = np.mean(_abs_sq(g), axis=self.axes, keepdims=True)
        self.v = self.b2 * self.v + (1 - self.b2) * block_mean
        m_hat, v_hat = self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)
        return -self.lr * (m_hat / (np.sqrt(v_hat) + self.eps) + self.wd * p)


class NumpyAdamAtan2:
    """Everett et al. 2024: Adam's bias-corrected moments, u = a atan2(m_hat, b sqrt(v_hat))
    (a complex m_hat keeps its phase), decoupled decay times the learning rate."""

    def __init__(self, shape, dtype, lr, b1, b2, wd, a, b):
        self.lr, self.b1, self.b2, self.wd, self.a, self.b = lr, b1, b2, wd, a, b
        self.m, self.v, self.t = np.zeros(shape, dtype), np.zeros(shape), 0

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * _abs_sq(g)
        m_hat, v_hat = self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)
        size = np.abs(m_hat)
        phase = np.where(size > 0, m_hat / np.where(size > 0, size, 1.0), 0.0)
        u = self.a * np.arctan2(size, self.b * np.sqrt(v_hat)) * phase
        return -self.lr * (u + self.wd * p)


# ---------------------------------------------------------------------------------------------
# Inputs


SHAPES = {
    "heads": ((2, 3, 4), np.float64),  # (heads, d_head, d_model)
    "w": ((4, 5), np.float64),
    "b": ((5,), np.float64),
    "z": ((3, 2), np.complex128),
}


def _random_inputs(steps: int, seed: int) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)

    def draw(shape: tuple, dtype: Any) -> np.ndarray:
        x = rng.normal(size=shape) * rng.uniform(0.1, 3.0)
        return (x + 1j * rng.normal(size=shape)).astype(dtype) if dtype == np.complex128 else x

    out = []
    for _ in range(steps):
        params = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        grads = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        out.append((params, grads))
    return out


def _as_jax(tree: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in tree.items()}


def _run_against(opt: Any, rules: dict, inputs: list[tuple[dict, dict]], tag: str) -> Any:
    state = opt.init(_as_jax(inputs[0][0]))
    update = _jit(opt.update)
    for step, (params, grads) in enumerate(inputs, start=1):
        updates, state = update(_as_jax(grads), state, _as_jax(params))
        for key, rule in rules.items():
            expected = rule.delta(params[key], grads[key])
            np.testing.assert_allclose(
                np.asarray(updates[key]), expected, rtol=1e-10, atol=1e-14,
                err_msg=f"{tag} {key} step {step}",
            )  # fmt: skip
    return state


def _heads_and_rows(path: str, shape: tuple[int, ...]) -> Sequence[int] | None:
    """One block per head for the 3-D leaf, per row for matrices, per leaf otherwise."""
    if path == "['heads']":
        return (1, 2)
    return per_row(path, shape)


# ---------------------------------------------------------------------------------------------
# Adam-mini


@pytest.mark.parametrize("partition", ["per_leaf", "heads_and_rows"])
def test_adam_mini_matches_the_reference_step_by_step(partition: str) -> None:
    rule = None if partition == "per_leaf" else _heads_and_rows
    opt = adam_mini(0.02, 0.8, 0.95, 1e-6, weight_decay=0.2, block_axes=rule)
    rules = {}
    for key, (shape, dtype) in SHAPES.items():
        axes = None if rule is None else rule(f"['{key}']", shape)
        rules[key] = NumpyAdamMini(shape, dtype, 0.02, 0.8, 0.95, 1e-6, 0.2, axes=axes)
    _run_against(opt, rules, _random_inputs(10, seed=1), partition)


def test_adam_mini_state_has_one_second_moment_per_block_and_saves_memory() -> None:
    """A small Transformer-like tree: nu holds one value per block; the state is about half of
    Adam's (m per parameter, v per block)."""
    params = {
        "embed": jnp.zeros((64, 32)),
        "q": jnp.zeros((4, 8, 32)),  # (heads, d_head, d_model)
        "k": jnp.zeros((4, 8, 32)),
        "mlp": jnp.zeros((32, 128)),
        "bias": jnp.zeros(128),
    }
    n_params = sum(x.size for x in jax.tree.leaves(params))

    def heads(path: str, shape: tuple[int, ...]) -> Sequence[int] | None:
        return (1, 2) if path in ("['q']", "['k']") else per_row(path, shape)

    per_leaf = adam_mini(1e-3).init(params)[0]
    per_block = adam_mini(1e-3, block_axes=heads).init(params)[0]
    assert isinstance(per_leaf, MiniMomentsState)
    assert all(v.size == 1 for v in jax.tree.leaves(per_leaf.nu))
    expected_blocks = {"embed": 64, "q": 4, "k": 4, "mlp": 32, "bias": 1}
    assert {k: v.size for k, v in per_block.nu.items()} == expected_blocks
    assert per_block.nu["q"].shape == (4, 1, 1)

    def state_bytes(state: Any) -> int:
        return sum(x.nbytes for x in jax.tree.leaves(state))

    adam_bytes = state_bytes(adam(1e-3).init(params))
    mini_bytes = state_bytes(adam_mini(1e-3, block_axes=heads).init(params))
    # float64 params: Adam holds 16 bytes per parameter (m and v); Adam-mini 8 plus the blocks
    assert adam_bytes == 16 * n_params + 4  # + the int32 count
    assert mini_bytes == 8 * n_params + 8 * sum(expected_blocks.values()) + 4
    assert mini_bytes / adam_bytes < 0.52


def test_mini_moments_compose_with_update_clipping_and_atan2() -> None:
    """Blocks of nu broadcast through the other moments-stage blocks: update_clipping's RMS is
    over the whole leaf, atan2_normalize divides by the block's root."""
    rng = np.random.default_rng(2)
    g = rng.normal(size=(3, 4))
    opt = chain(mini_moments(0.5, 0.5, per_row), bias_correction(), update_clipping(1e-12))
    opt = chain(opt, atan2_normalize(1.0, 2.0))
    updates, _ = _jit(opt.update)(jnp.asarray(g), opt.init(jnp.zeros((3, 4))))
    v = np.mean(g**2, axis=1, keepdims=True)  # t = 1: v_hat is the block mean, m_hat is g
    rms = np.sqrt(np.mean(g**2 / v))  # 1 exactly: no clipping at t = 1
    expected = np.arctan2(g / max(1.0, rms), 2.0 * np.sqrt(v))
    np.testing.assert_allclose(np.asarray(updates), expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Adam-atan2


def test_adam_atan2_matches_the_reference_step_by_step() -> None:
    opt = adam_atan2(0.03, 0.8, 0.9, weight_decay=0.1, a=1.5, b=0.7)
    rules = {k: NumpyAdamAtan2(s, d, 0.03, 0.8, 0.9, 0.1, 1.5, 0.7) for k, (s, d) in SHAPES.items()}
    _run_against(opt, rules, _random_inputs(10, seed=3), "adam_atan2")


def test_adam_atan2_defaults_are_scale_invariant_and_need_no_eps() -> None:
    """Gradients scaled by 1e-120 (Adam with eps = 1e-8 would stall) give the same updates; a
    zero gradient gives a zero update, not NaN; the defaults are a = 1.27, b = 1."""
    inputs = _random_inputs(4, seed=4)
    real = ["heads", "w", "b"]
    tiny = [({k: p[k] for k in real}, {k: 1e-120 * g[k] for k in real}) for p, g in inputs]
    opt = adam_atan2(0.01, weight_decay=0.0)
    rules = {k: NumpyAdamAtan2(SHAPES[k][0], np.float64, 0.01, 0.9, 0.999, 0.0, 1.27, 1.0)
             for k in real}  # fmt: skip
    _run_against(opt, rules, tiny, "tiny")
    normal = [({k: p[k] for k in real}, {k: g[k] for k in real}) for p, g in inputs]
    update = _jit(opt.update)
    states = [opt.init(_as_jax(normal[0][0])) for _ in range(2)]
    for (params, grads), (_, small) in zip(normal, tiny, strict=True):
        ours, states[0] = update(_as_jax(grads), states[0], _as_jax(params))
        theirs, states[1] = update(_as_jax(small), states[1], _as_jax(params))
        for key in real:
            np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(theirs[key]), rtol=1e-12)
    ones = {"w": jnp.ones(3)}
    zero, _ = opt.update({"w": jnp.zeros(3)}, opt.init(ones), ones)
    np.testing.assert_array_equal(np.asarray(zero["w"]), 0.0)
    # atan2(x, x) = pi / 4: with a = 1.27 a first step moves 1.27 * pi / 4 ~ 0.9975 lr
    twos = {"w": jnp.ones(2)}
    first, _ = opt.update({"w": jnp.array([2.0, -3.0])}, opt.init(twos), twos)
    np.testing.assert_allclose(
        np.asarray(first["w"]), np.array([-0.01, 0.01]) * (1.27 * math.pi / 4)
    )


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: vmap over a batch equals the loop and the references


def _quartic(params: dict) -> jax.Array:
    return jnp.sum(params["x"] ** 4 - 3.0 * params["x"] ** 2) + jnp.sum(params["y"] ** 2)


START = {"x": np.array([[0.5, -1.5], [2.0, 0.1]]), "y": np.array([1.0, -3.0, 0.2])}
BUILDERS: dict[str, Callable[[Any, Any], Any]] = {
    "adam_mini": lambda lr, h: adam_mini(lr, b2=h, weight_decay=0.1, block_axes=per_row),
    "adam_atan2": lambda lr, h: adam_atan2(lr, weight_decay=0.1, a=h),
}
MEMBERS = {"adam_mini": (0.999, 0.9, 0.5), "adam_atan2": (1.27, 0.5, 2.0)}


def _numpy_member(name: str, lr: float, value: float, steps: int) -> dict:
    params = {k: v.copy() for k, v in START.items()}
    rules: dict[str, Any] = {}
    for k, v in params.items():
        if name == "adam_mini":
            axes = per_row(f"['{k}']", v.shape)
            rules[k] = NumpyAdamMini(v.shape, v.dtype, lr, 0.9, value, 1e-8, 0.1, axes=axes)
        else:
            rules[k] = NumpyAdamAtan2(v.shape, v.dtype, lr, 0.9, 0.999, 0.1, value, 1.0)
    for _ in range(steps):
        grads = {"x": 4.0 * params["x"] ** 3 - 6.0 * params["x"], "y": 2.0 * params["y"]}
        params = {k: params[k] + rules[k].delta(params[k], grads[k]) for k in params}
    return params


def test_vmap_over_traced_hyperparameters_equals_the_loop_and_the_reference() -> None:
    check_batch_equals_loop_and_reference(
        BUILDERS, MEMBERS, [0.02, 0.05, 0.3], _quartic, START, _numpy_member
    )


# ---------------------------------------------------------------------------------------------
# Errors name the argument or the path


@pytest.mark.parametrize(
    ("build", "error", "named"),
    [
        (lambda: adam_mini(0.1, b1=1.0), ValueError, "b1"),
        (lambda: adam_mini(0.1, b2=-0.1), ValueError, "b2"),
        (lambda: adam_mini(0.1, eps=-1.0), ValueError, "eps"),
        (lambda: adam_mini(0.1, weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: adam_mini(0.1, block_axes=unchecked((0, 1))), TypeError, "block_axes"),
        (lambda: mini_moments(nu_dtype=jnp.int32), TypeError, "nu_dtype"),
        (lambda: adam_atan2(0.1, a=-1.0), ValueError, "a"),
        (lambda: adam_atan2(0.1, b=0.0), ValueError, "b"),
        (lambda: adam_atan2(0.1, b2=1.0), ValueError, "b2"),
        (lambda: adam_atan2(-0.1), ValueError, "learning_rate"),
        (lambda: atan2_normalize(b=unchecked("1")), TypeError, "b"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    build: Callable[[], Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        build()


def test_bad_block_axes_and_misplaced_blocks_are_named() -> None:
    params = {"w": jnp.zeros((2, 3))}
    with pytest.raises(ValueError, match=r"block_axes.*params\['w'\]"):
        mini_moments(block_axes=lambda path, shape: (2,)).init(params)
    with pytest.raises(ValueError, match="repeated"):
        mini_moments(block_axes=lambda path, shape: (1, -1)).init(params)
    with pytest.raises(TypeError, match=r"block_axes.*params\['w'\]"):
        mini_moments(block_axes=unchecked(lambda path, shape: "x")).init(params)
    state = mini_moments().init(params)
    other = mini_moments(block_axes=per_row)
    with pytest.raises(ValueError, match=r"state.nu\['w'\]"):
        other.update({"w": jnp.ones((2, 3))}, state)
    grads = {"w": jnp.ones((2, 3))}
    with pytest.raises(TypeError, match="moment estimator"):
        atan2_normalize().update(grads, ())
    adamax_like = chain(infinity_moments(), atan2_normalize())
    with pytest.raises(TypeError, match="infinity_norm"):
        adamax_like.update(grads, adamax_like.init(params))
