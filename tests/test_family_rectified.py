"""RAdam, AdaBelief and Yogi against optax and a float64 NumPy reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax import (
    BeliefMomentsState,
    YogiMomentsState,
    adabelief,
    apply_updates,
    belief_moments,
    bias_correction,
    chain,
    moments,
    radam,
    rectified_normalize,
    yogi,
    yogi_moments,
)

# ---------------------------------------------------------------------------------------------
# Float64 NumPy reference (one array at a time; no jax, optax or adamjax below this line)
# ---------------------------------------------------------------------------------------------


def _abs_sq(x: np.ndarray) -> np.ndarray:
    return np.real(x * np.conj(x))


class NumpyRAdam:
    """Liu et al. 2020, Algorithm 2, with optax's threshold, eps placement and Nesterov option."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, eps_root, threshold, nesterov=False):
        self.lr, self.b1, self.b2 = lr, b1, b2
        self.eps, self.eps_root, self.threshold, self.nesterov = eps, eps_root, threshold, nesterov
        self.m = np.zeros(shape, dtype)
        self.v = np.zeros(shape, np.float64)
        self.t = 0

    def delta(self, g: np.ndarray) -> np.ndarray:
        b1, b2 = self.b1, self.b2
        self.t += 1
        t = self.t
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * _abs_sq(g)
        if self.nesterov:
            m_hat = b1 * self.m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = self.m / (1 - b1**t)
        v_hat = self.v / (1 - b2**t)
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho >= self.threshold:
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            step = r * m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)
        else:
            step = m_hat
        return -self.lr * step


class NumpyAdaBelief:
    """Zhuang et al. 2020, Algorithm 2, eps_root added to s_t at every step (as optax)."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, eps_root, nesterov=False):
        self.lr, self.b1, self.b2, self.eps, self.eps_root = lr, b1, b2, eps, eps_root
        self.nesterov = nesterov
        self.m = np.zeros(shape, dtype)
        self.s = np.zeros(shape, np.float64)
        self.t = 0

    def delta(self, g: np.ndarray) -> np.ndarray:
        b1, b2 = self.b1, self.b2
        self.t += 1
        t = self.t
        self.m = b1 * self.m + (1 - b1) * g
        self.s = b2 * self.s + (1 - b2) * _abs_sq(g - self.m) + self.eps_root
        if self.nesterov:
            m_hat = b1 * self.m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = self.m / (1 - b1**t)
        s_hat = self.s / (1 - b2**t)
        return -self.lr * m_hat / (np.sqrt(s_hat) + self.eps)


class NumpyYogi:
    """Zaheer et al. 2018, Algorithm 2, with optax's start value 1e-6 and bias correction."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, initial=1e-6):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = np.full(shape, initial, dtype)
        self.v = np.full(shape, initial, np.float64)
        self.t = 0

    def delta(self, g: np.ndarray) -> np.ndarray:
        b1, b2 = self.b1, self.b2
        self.t += 1
        t = self.t
        self.m = b1 * self.m + (1 - b1) * g
        g2 = _abs_sq(g)
        self.v = self.v - (1 - b2) * np.sign(self.v - g2) * g2
        m_hat = self.m / (1 - b1**t)
        v_hat = self.v / (1 - b2**t)
        return -self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

ALIASES = {"radam": radam, "adabelief": adabelief, "yogi": yogi}
CASES = [
    ("radam", {}),
    ("radam", {"nesterov": True, "threshold": 4.0, "eps_root": 1e-12}),
    ("adabelief", {}),
    ("adabelief", {"nesterov": True}),
    ("yogi", {"b2": 0.99}),
]


def _rosenbrock(params: dict) -> jax.Array:
    """The Rosenbrock function of ``x ++ y`` (divided by 100): non-convex, curved valley."""
    z = jnp.concatenate([params["x"], params["y"]])
    return jnp.sum((z[1:] - z[:-1] ** 2) ** 2 + 0.01 * (1.0 - z[:-1]) ** 2)


def _start() -> dict:
    return {"x": jnp.asarray([-1.2, 1.0]), "y": jnp.asarray([0.5, -0.8, 1.3])}


def _max_abs(tree: Any) -> float:
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------------------------
# Parity with optax over 100 steps on a non-convex problem
# ---------------------------------------------------------------------------------------------


def _trajectories(build: Callable, apply: Callable, start: dict, steps: int) -> list[dict]:
    """Final params of every case in ``CASES``, all compiled as one program."""
    grad = jax.grad(_rosenbrock)
    optimizers = [build(name, options) for name, options in CASES]

    def run(opt: Any, params: dict) -> dict:
        def body(_: Any, carry: tuple) -> tuple:
            params, state = carry
            updates, state = opt.update(grad(params), state, params)
            return apply(params, updates), state

        return jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))[0]

    return jax.jit(lambda p: [run(opt, p) for opt in optimizers])(start)


def test_matches_optax_over_100_steps() -> None:
    start = _start()
    ours = _trajectories(lambda n, o: ALIASES[n](0.02, **o), apply_updates, start, 100)
    with jax.numpy_dtype_promotion("standard"):
        theirs = _trajectories(
            lambda n, o: getattr(optax, n)(0.02, **o), optax.apply_updates, start, 100
        )
    for case, mine, reference in zip(CASES, ours, theirs, strict=True):
        moved = _max_abs(jax.tree.map(jnp.subtract, reference, start))
        gap = _max_abs(jax.tree.map(jnp.subtract, mine, reference))
        assert moved > 0.1, case  # the trajectory went somewhere
        assert gap <= 1e-10 * moved, (case, gap, moved)
        assert _rosenbrock(mine) < _rosenbrock(start), case


# ---------------------------------------------------------------------------------------------
# Step-by-step parity with the NumPy reference, with per-leaf hyperparameters
# ---------------------------------------------------------------------------------------------

SHAPES = {"a": ((3, 2), np.float64), "z": ((4,), np.complex128)}


def _gradients(steps: int) -> list[dict]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(steps):
        grads = {}
        for key, (shape, dtype) in SHAPES.items():
            g = rng.normal(size=shape) * rng.uniform(0.01, 3.0)
            if dtype == np.complex128:
                g = g + 1j * rng.normal(size=shape)
            grads[key] = g.astype(dtype)
        out.append(grads)
    return out


def _references(name: str, per_leaf: dict, options: dict) -> dict:
    refs = {}
    for key, (shape, dtype) in SHAPES.items():
        own = {arg: value[key] for arg, value in per_leaf.items()}
        if name == "radam":
            own.setdefault("eps", 1e-8)
            own.setdefault("eps_root", 0.0)
            own.setdefault("threshold", 5.0)
            refs[key] = NumpyRAdam(shape, dtype, **own, **options)
        elif name == "adabelief":
            own.setdefault("eps_root", 1e-16)
            refs[key] = NumpyAdaBelief(shape, dtype, **own, **options)
        else:
            refs[key] = NumpyYogi(shape, dtype, **own, **options)
    return refs


PER_LEAF = {
    "radam": {
        "lr": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.999, "z": 0.9},
        "eps": {"a": 1e-8, "z": 1e-3},
        "threshold": {"a": 5.0, "z": 4.0},
    },
    "adabelief": {
        "lr": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.999, "z": 0.9},
        "eps": {"a": 1e-16, "z": 1e-3},
        "eps_root": {"a": 1e-16, "z": 1e-4},
    },
    "yogi": {
        "lr": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.999, "z": 0.9},
        "eps": {"a": 1e-3, "z": 1e-6},
    },
}


@pytest.mark.parametrize(
    ("name", "options"),
    [("radam", {}), ("radam", {"nesterov": True}), ("adabelief", {}), ("yogi", {})],
)
def test_matches_numpy_reference_step_by_step_with_per_leaf_values(
    name: str, options: dict
) -> None:
    per_leaf = PER_LEAF[name]
    kwargs = {arg: value for arg, value in per_leaf.items() if arg != "lr"}
    opt = ALIASES[name](per_leaf["lr"], **kwargs, **options)
    refs = _references(name, per_leaf, options)
    params = {key: jnp.zeros(shape, dtype) for key, (shape, dtype) in SHAPES.items()}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for step, grads in enumerate(_gradients(30), start=1):
        updates, state = update({k: jnp.asarray(g) for k, g in grads.items()}, state)
        for key, ref in refs.items():
            np.testing.assert_allclose(
                np.asarray(updates[key]), ref.delta(grads[key]), rtol=1e-10, atol=0,
                err_msg=f"{name} {key} step {step}",
            )  # fmt: skip


def test_radam_switches_to_the_adaptive_step_when_rho_reaches_the_threshold() -> None:
    # b2 = 0.999: rho_5 = 4.996, rho_6 = 5.994; with threshold 5 the first five steps are
    # momentum SGD (update = -lr * m_hat) and the sixth is rectified.
    grads = [np.array([0.5, -2.0]) * (k + 1) for k in range(7)]
    opt = radam(1.0, b1=0.0)
    state = opt.init(jnp.zeros(2))
    update = jax.jit(opt.update)
    for step, g in enumerate(grads, start=1):
        updates, state = update(jnp.asarray(g), state)
        if step <= 5:
            np.testing.assert_allclose(np.asarray(updates), -g, rtol=1e-14)
        else:
            assert not np.allclose(np.asarray(updates), -g)
            assert np.all(np.abs(np.asarray(updates)) < 1.0)  # r_t m / sqrt(v) is O(1)


def test_states_have_the_moments_fields() -> None:
    params = {"w": jnp.ones(3)}
    for block, kind in ((belief_moments(), BeliefMomentsState), (yogi_moments(), YogiMomentsState)):
        state = block.init(params)
        assert isinstance(state, kind)
        assert state._fields == ("count", "mu", "nu")
        assert state.count.dtype == jnp.int32
    yogi_state = yogi_moments(initial_accumulator_value=0.25).init(params)
    np.testing.assert_array_equal(np.asarray(yogi_state.mu["w"]), [0.25] * 3)
    np.testing.assert_array_equal(np.asarray(yogi_state.nu["w"]), [0.25] * 3)


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: jit without recompilation, vmap over learning rates
# ---------------------------------------------------------------------------------------------


def _first_step_reference(name: str, lr: float, g: np.ndarray) -> np.ndarray:
    if name == "radam":
        return NumpyRAdam(g.shape, g.dtype, lr, 0.9, 0.999, 1e-8, 0.0, 5.0).delta(g)
    if name == "adabelief":
        return NumpyAdaBelief(g.shape, g.dtype, lr, 0.9, 0.999, 1e-16, 1e-16).delta(g)
    return NumpyYogi(g.shape, g.dtype, lr, 0.9, 0.999, 1e-3).delta(g)


@pytest.mark.parametrize("name", ["radam", "adabelief", "yogi"])
def test_jitted_step_with_traced_learning_rate_compiles_once(name: str) -> None:
    params = {"w": jnp.asarray([0.5, -1.0, 2.0])}
    grads = {"w": jnp.asarray([0.3, -2.0, 1e-3])}

    @jax.jit
    @chex.assert_max_traces(n=1)  # a new learning rate reuses the compiled step
    def step(params: dict, lr: jax.Array) -> dict:
        opt = ALIASES[name](lr)
        updates, _ = opt.update(grads, opt.init(params), params)
        return updates

    for lr in (0.1, 0.3):
        updates = step(params, jnp.asarray(lr))
        expected = _first_step_reference(name, lr, np.asarray(grads["w"]))
        np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-10)


def test_vmap_over_learning_rates_equals_the_loop() -> None:
    start = _start()
    grad = jax.grad(_rosenbrock)

    def train(lr: jax.Array) -> list[dict]:
        def one(opt: Any) -> dict:
            def body(_: Any, carry: tuple) -> tuple:
                params, state = carry
                updates, state = opt.update(grad(params), state, params)
                return apply_updates(params, updates), state

            return jax.lax.fori_loop(0, 10, body, (start, opt.init(start)))[0]

        return [one(ALIASES[name](lr)) for name in ("radam", "adabelief", "yogi")]

    lrs = jnp.asarray([0.001, 0.01, 0.05])
    batched, looped = jax.jit(lambda lrs: (jax.vmap(train)(lrs), jax.lax.map(train, lrs)))(lrs)
    for by_vmap, by_loop in zip(batched, looped, strict=True):
        for key in start:
            np.testing.assert_allclose(
                np.asarray(by_vmap[key]), np.asarray(by_loop[key]), rtol=1e-12, atol=1e-15
            )
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(by_loop))
        for i in range(3):  # each learning rate moved the params
            assert _max_abs(jax.tree.map(lambda p, s, i=i: p[i] - s, by_loop, start)) > 0
        assert not np.allclose(np.asarray(by_loop["x"][0]), np.asarray(by_loop["x"][2]))


# ---------------------------------------------------------------------------------------------
# rectified_normalize as a block (its errors are in tests/test_errors.py)
# ---------------------------------------------------------------------------------------------


def test_rectified_normalize_after_bias_correction_passes_m_hat_on_before_the_threshold() -> None:
    params = jnp.ones(3)
    good = chain(moments(), bias_correction(), rectified_normalize())
    updates, _ = good.update(params, good.init(params))
    np.testing.assert_allclose(np.asarray(updates), np.ones(3), rtol=1e-12)  # rho_1 < 5: m_hat
