"""lion, nadamw and adamaxw against optax, torch and a float64 NumPy reference."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from adamjax import adamaxw, lion, lion_direction, nadamw

STEPS = 100
NAMES = ("w1", "w2")

# ---------------------------------------------------------------------------------------------
# The problem: a tiny tanh MLP on fixed data, with gradients in JAX and, by hand, in NumPy.

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(16, 3))
Y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
INITIAL = {"w1": _RNG.normal(size=(3, 5)), "w2": _RNG.normal(size=(5,))}


def _loss(params: dict) -> jax.Array:
    hidden = jnp.tanh(jnp.asarray(X) @ params["w1"])
    residual = hidden @ params["w2"] - jnp.asarray(Y)
    return jnp.mean(residual**2)


def _numpy_grad(params: dict) -> dict:
    """The gradient of :func:`_loss`, by hand."""
    hidden = np.tanh(X @ params["w1"])
    residual = hidden @ params["w2"] - Y
    d_out = 2.0 * residual / len(Y)
    d_pre = np.outer(d_out, params["w2"]) * (1.0 - hidden**2)
    return {"w1": X.T @ d_pre, "w2": hidden.T @ d_out}


def _start() -> dict:
    return {k: jnp.asarray(v) for k, v in INITIAL.items()}


def _flat(params: dict) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(params[k])) for k in NAMES])


def _trajectory(opt: Any, apply: Callable[[Any, Any], Any], steps: int = STEPS) -> np.ndarray:
    """Flattened params after each step of ``opt`` on :func:`_loss` (jitted step)."""

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        grads = jax.grad(_loss)(params)
        updates, state = opt.update(grads, state, params)
        return apply(params, updates), state

    params = _start()
    state = opt.init(params)
    out = []
    for _ in range(steps):
        params, state = step(params, state)
        out.append(_flat(params))
    return np.stack(out)


def _ours(opt: Any, steps: int = STEPS) -> np.ndarray:
    return _trajectory(opt, adamjax.apply_updates, steps)


def _optax(opt: Any) -> np.ndarray:
    with jax.numpy_dtype_promotion("standard"):
        return _trajectory(opt, optax.apply_updates)


# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy reference rules: one state per leaf, hyperparameters per leaf.


def _value(setting: Any, name: str) -> float:
    return float(setting[name]) if isinstance(setting, dict) else float(setting)


class LionReference:
    """c = b1 m + (1 - b1) g;  p <- p - lr (sign(c) + wd p);  m <- b2 m + (1 - b2) g."""

    def __init__(self, params: np.ndarray, lr: float, b1: float, b2: float, wd: float):
        self.lr, self.b1, self.b2, self.wd = lr, b1, b2, wd
        self.m = np.zeros_like(params)

    def step(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        c = self.b1 * self.m + (1.0 - self.b1) * g
        self.m = self.b2 * self.m + (1.0 - self.b2) * g
        return p - self.lr * (np.sign(c) + self.wd * p)


class NAdamWReference:
    """NAdam with constant b1 (optax's) and decoupled weight decay."""

    def __init__(self, params: np.ndarray, lr: float, b1: float, b2: float, wd: float):
        self.lr, self.b1, self.b2, self.wd = lr, b1, b2, wd
        self.eps, self.eps_root = 1e-8, 0.0
        self.m, self.v, self.t = np.zeros_like(params), np.zeros_like(params), 0

    def step(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        b1, b2 = self.b1, self.b2
        self.t += 1
        self.m = b1 * self.m + (1.0 - b1) * g
        self.v = b2 * self.v + (1.0 - b2) * g * g
        m_hat = b1 * self.m / (1.0 - b1 ** (self.t + 1)) + (1.0 - b1) * g / (1.0 - b1**self.t)
        v_hat = self.v / (1.0 - b2**self.t)
        direction = m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps)
        return p - self.lr * (direction + self.wd * p)


class AdamaxWReference:
    """m = b1 m + (1 - b1) g;  u = max(b2 u, |g| + eps);  p <- p - lr (m / (1-b1^t) / u + wd p)."""

    def __init__(self, params: np.ndarray, lr: float, b1: float, b2: float, wd: float):
        self.lr, self.b1, self.b2, self.wd, self.eps = lr, b1, b2, wd, 1e-8
        self.m, self.u, self.t = np.zeros_like(params), np.zeros_like(params), 0

    def step(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1.0 - self.b1) * g
        self.u = np.maximum(self.b2 * self.u, np.abs(g) + self.eps)
        direction = self.m / (1.0 - self.b1**self.t) / self.u
        return p - self.lr * (direction + self.wd * p)


def _reference(make: type, lr: Any, b1: Any, b2: Any, wd: Any) -> np.ndarray:
    params = {k: np.asarray(v, np.float64) for k, v in INITIAL.items()}
    rules = {
        k: make(v, _value(lr, k), _value(b1, k), _value(b2, k), _value(wd, k))
        for k, v in params.items()
    }
    out = []
    for _ in range(STEPS):
        grads = _numpy_grad(params)
        params = {k: rules[k].step(params[k], grads[k]) for k in NAMES}
        out.append(_flat(params))
    return np.stack(out)


# (adamjax alias, optax alias, reference, learning rate, b1, b2, weight decay)
CASES = {
    "lion": (lion, optax.lion, LionReference, 3e-3, 0.9, 0.99, 0.1),
    "nadamw": (nadamw, optax.nadamw, NAdamWReference, 2e-2, 0.9, 0.999, 0.05),
    "adamaxw": (adamaxw, optax.adamaxw, AdamaxWReference, 2e-2, 0.9, 0.999, 0.05),
}


@functools.cache
def _case_trajectory(name: str) -> np.ndarray:
    """adamjax's trajectory for ``CASES[name]`` (shared by the optax, NumPy and torch tests)."""
    ours_fn, _, _, lr, b1, b2, wd = CASES[name]
    return _ours(ours_fn(lr, b1, b2, weight_decay=wd))


def _relative_to_distance(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max_t |ours_t - theirs_t| / max_t |theirs_t - theta_0|."""
    moved = np.max(np.linalg.norm(theirs - _flat(INITIAL), axis=1))
    return float(np.max(np.linalg.norm(ours - theirs, axis=1)) / moved)


@pytest.mark.parametrize("name", CASES)
def test_matches_optax_over_100_steps(name: str) -> None:
    _, optax_fn, _, lr, b1, b2, wd = CASES[name]
    ours = _case_trajectory(name)
    theirs = _optax(optax_fn(lr, b1, b2, weight_decay=wd))
    assert np.linalg.norm(theirs[-1] - _flat(INITIAL)) > 0.05  # the problem moves
    assert _relative_to_distance(ours, theirs) <= 1e-10


@pytest.mark.parametrize("name", CASES)
def test_matches_numpy_reference_step_by_step(name: str) -> None:
    _, _, reference, lr, b1, b2, wd = CASES[name]
    ours = _case_trajectory(name)
    expected = _reference(reference, lr, b1, b2, wd)
    for t in range(STEPS):
        np.testing.assert_allclose(ours[t], expected[t], rtol=1e-10, err_msg=f"step {t + 1}")


@pytest.mark.parametrize("name", CASES)
def test_per_leaf_hyperparameters_match_reference(name: str) -> None:
    ours_fn, _, reference, _, _, _, _ = CASES[name]
    lr = {"w1": 1e-2, "w2": 3e-3}
    b1 = {"w1": 0.9, "w2": 0.5}
    b2 = {"w1": 0.99, "w2": 0.9}
    wd = {"w1": 0.0, "w2": 0.3}
    ours = _ours(ours_fn(lr, b1, b2, weight_decay=wd))
    np.testing.assert_allclose(ours, _reference(reference, lr, b1, b2, wd), rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# torch's NAdam: a momentum warm-up schedule makes it a different rule by default.

torch = pytest.importorskip("torch")


@contextmanager
def _torch_float64_default() -> Iterator[None]:
    """torch keeps NAdam's step and momentum product in the default dtype (float32 otherwise)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _torch_nadam(lr: float, weight_decay: float, momentum_decay: float) -> np.ndarray:
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INITIAL.items()
    }
    opt = torch.optim.NAdam(
        [tensors[k] for k in NAMES],
        lr=lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=weight_decay,
        momentum_decay=momentum_decay,
        decoupled_weight_decay=True,
    )
    out = []
    for _ in range(STEPS):
        grads = _numpy_grad({k: t.detach().numpy() for k, t in tensors.items()})
        for k in NAMES:
            tensors[k].grad = torch.tensor(grads[k], dtype=torch.float64)
        with _torch_float64_default():
            opt.step()
        out.append(np.concatenate([tensors[k].detach().numpy().ravel() for k in NAMES]))
    return np.stack(out)


@pytest.mark.slow  # steps torch.optim.NAdam side by side; CI runs it
def test_torch_nadam_default_momentum_schedule_differs_from_nadamw() -> None:
    ours = _case_trajectory("nadamw")  # lr 2e-2, betas (0.9, 0.999), weight decay 0.05
    theirs = _torch_nadam(2e-2, 0.05, momentum_decay=4e-3)
    # torch's first step uses mu_1 = 0.9 (1 - 0.5 * 0.96^0.004) ~ 0.45, not 0.9
    assert _relative_to_distance(ours, theirs) > 1e-2


@pytest.mark.slow  # steps torch.optim.NAdam side by side; CI runs it
def test_torch_nadam_with_saturated_schedule_equals_nadamw() -> None:
    ours = _case_trajectory("nadamw")
    theirs = _torch_nadam(2e-2, 0.05, momentum_decay=1e9)  # 0.96^(t * 1e9) == 0.0
    assert _relative_to_distance(ours, theirs) <= 1e-10


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: one compilation for every learning rate; vmap equals the loop.

ROSENBROCK_START = np.array([-1.2, 1.0, 0.5, -0.3])


def _rosenbrock(x: jax.Array) -> jax.Array:
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _numpy_rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    inner = x[1:] - x[:-1] ** 2
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * x[:-1] * inner - 2.0 * (1.0 - x[:-1])
    grad[1:] += 200.0 * inner
    return grad


def _run_with(alias: Callable[..., Any], lr: Any, steps: int = 3) -> jax.Array:
    """``steps`` steps of ``alias(lr)`` on Rosenbrock's function from ``ROSENBROCK_START``."""
    opt = alias(lr)
    x = jnp.asarray(ROSENBROCK_START)
    state = opt.init(x)
    for _ in range(steps):
        updates, state = opt.update(jax.grad(_rosenbrock)(x), state, x)
        x = adamjax.apply_updates(x, updates)
    return x


def _reference_steps(name: str, lr: float, steps: int = 3) -> np.ndarray:
    """The NumPy reference for :func:`_run_with`, with the alias's default hyperparameters."""
    _, _, reference, _, _, _, _ = CASES[name]
    b2 = 0.99 if name == "lion" else 0.999
    weight_decay = 1e-3 if name == "lion" else 1e-4
    rule = reference(ROSENBROCK_START.copy(), lr, 0.9, b2, weight_decay)
    x = ROSENBROCK_START.copy()
    for _ in range(steps):
        x = rule.step(x, _numpy_rosenbrock_grad(x))
    return x


RATES = (1e-3, 2e-2, 5e-2)


@pytest.mark.parametrize("name", CASES)
def test_traced_learning_rate_compiles_once_and_vmap_equals_loop(name: str) -> None:
    alias = CASES[name][0]

    def run(lr: jax.Array) -> jax.Array:
        return _run_with(alias, lr)

    jitted = jax.jit(chex.assert_max_traces(run, n=1))  # one trace for every learning rate
    looped = [np.asarray(jitted(jnp.asarray(lr))) for lr in RATES]
    for lr, got in zip(RATES, looped, strict=True):
        np.testing.assert_allclose(got, _reference_steps(name, lr), rtol=1e-10)
    batched = jax.jit(jax.vmap(run))(jnp.asarray(RATES))
    for i, got in enumerate(looped):
        np.testing.assert_allclose(batched[i], got, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# lion_direction as a block (the errors of all three are in tests/test_errors.py).


def test_lion_direction_is_sign_of_interpolation_and_keeps_b2_momentum() -> None:
    block = lion_direction(0.75, 0.5)
    params = jnp.zeros(4)
    state = block.init(params)
    g1, g2 = jnp.asarray([1.0, -2.0, 0.0, 4.0]), jnp.asarray([-1.0, 1.0, 0.0, -0.5])
    u1, state = block.update(g1, state, params)
    np.testing.assert_array_equal(u1, [1.0, -1.0, 0.0, 1.0])
    np.testing.assert_array_equal(state.mu, [0.5, -1.0, 0.0, 2.0])  # 0.5 * g1
    u2, state = block.update(g2, state, params)
    # c = 0.75 m + 0.25 g2 = [0.125, -0.5, 0, 1.375]
    np.testing.assert_array_equal(u2, [1.0, -1.0, 0.0, 1.0])
    np.testing.assert_array_equal(state.mu, [-0.25, 0.0, 0.0, 0.75])
    assert int(state.count) == 2


def test_lion_direction_stores_mu_dtype_and_emits_grad_dtype() -> None:
    block = lion_direction(mu_dtype=jnp.bfloat16)
    params = jnp.zeros(3, jnp.float32)
    state = block.init(params)
    assert state.mu.dtype == jnp.bfloat16
    updates, state = block.update(jnp.ones(3, jnp.float32), state, params)
    assert updates.dtype == jnp.float32 and state.mu.dtype == jnp.bfloat16
