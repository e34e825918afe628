"""cautious() and StableAdamW (update_clipping) against float64 NumPy references, step by step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adamjax import (
    adamw,
    add_decayed_weights,
    bias_correction,
    cautious,
    chain,
    lion,
    moments,
    normalize,
    scale_by_learning_rate,
    skip_nonfinite,
    stable_adamw,
    update_clipping,
)
from tests.family_checks import check_batch_equals_loop_and_reference
from tests.typed import unchecked

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
STEPS = 12

# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy references, one array at a time (no jax or adamjax).


def _abs_sq(x: np.ndarray) -> np.ndarray:
    return np.real(x * np.conj(x))


def numpy_cautious_mask(u: np.ndarray, g: np.ndarray, keep_sign: float) -> np.ndarray:
    """Liang et al. 2024 (C-Optim): phi = 1[u g has sign keep_sign], scaled by d / (nnz + 1)."""
    phi = (keep_sign * np.real(u * np.conj(g)) > 0).astype(np.float64)
    return phi * (u.size / (phi.sum() + 1.0))


class NumpyAdamW:
    """Adam (Kingma & Ba, Algorithm 1) plus decoupled decay; ``delta`` is added to the params.
    ``masked="step"`` masks the whole step, ``"direction"`` the Adam direction only."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, wd, masked=None):
        self.lr, self.b1, self.b2, self.eps, self.wd, self.masked = lr, b1, b2, eps, wd, masked
        self.m, self.v, self.t = np.zeros(shape, dtype), np.zeros(shape), 0

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * _abs_sq(g)
        m_hat, v_hat = self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)
        direction = m_hat / (np.sqrt(v_hat) + self.eps)
        if self.masked == "direction":
            direction = direction * numpy_cautious_mask(direction, g, keep_sign=1.0)
        step = -self.lr * (direction + self.wd * p)
        if self.masked == "step":
            step = step * numpy_cautious_mask(step, g, keep_sign=-1.0)
        return step


class NumpyCautiousLion:
    """Chen et al. 2023 (Lion) with decoupled decay, the whole step masked."""

    def __init__(self, shape, dtype, lr, b1, b2, wd):
        self.lr, self.b1, self.b2, self.wd = lr, b1, b2, wd
        self.m = np.zeros(shape, dtype)

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        c = self.b1 * self.m + (1 - self.b1) * g
        step = -self.lr * (np.sign(c) + self.wd * p)
        self.m = self.b2 * self.m + (1 - self.b2) * g
        return step * numpy_cautious_mask(step, g, keep_sign=-1.0)


class NumpyStableAdamW:
    """Wortsman et al. 2023, Algorithm 2 as the authors' StableAdamWUnfused writes it: moving
    averages with the bias-corrected decays beta_hat_t = beta (1 - beta^(t-1)) / (1 - beta^t),
    per-tensor RMS of g^2 / max(u, eps^2), the Adam term divided by max(1, RMS / threshold),
    the decoupled decay not."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, wd, threshold=1.0):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, b1, b2, eps, wd
        self.threshold = threshold
        self.v, self.u, self.t, self.rms = np.zeros(shape, dtype), np.zeros(shape), 0, []

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        t, b1, b2 = self.t, self.b1, self.b2
        b1_hat = b1 * (1 - b1 ** (t - 1)) / (1 - b1**t)
        b2_hat = b2 * (1 - b2 ** (t - 1)) / (1 - b2**t)
        self.v = b1_hat * self.v + (1 - b1_hat) * g
        self.u = b2_hat * self.u + (1 - b2_hat) * _abs_sq(g)
        rms = np.sqrt(np.mean(_abs_sq(g) / np.maximum(self.u, self.eps**2)))
        self.rms.append(rms)
        eta = self.lr / max(1.0, rms / self.threshold)
        return -self.lr * self.wd * p - eta * self.v / (np.sqrt(self.u) + self.eps)


# ---------------------------------------------------------------------------------------------
# Inputs: random params and gradients of changing scale; StableAdamW gets a spike


SHAPES = {"a": ((3, 4), np.float64), "z": ((5,), np.complex128), "c": ((2, 3), np.float64)}


def _random_inputs(steps: int, seed: int, spike: bool = False) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)

    def draw(shape: tuple, dtype: Any) -> np.ndarray:
        x = rng.normal(size=shape) * rng.uniform(0.1, 3.0)
        return (x + 1j * rng.normal(size=shape)).astype(dtype) if dtype == np.complex128 else x

    out = []
    for step in range(steps):
        params = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        grads = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        if spike and step in (4, 8):
            grads["a"] = grads["a"] * 50.0  # a loss spike: the update RMS is far above 1
        out.append((params, grads))
    return out


def _as_jax(tree: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in tree.items()}


def _run_against(
    opt: Any, rules: dict[str, Any], inputs: list[tuple[dict, dict]], tag: str
) -> list[dict]:
    """Step ``opt`` and the per-leaf references on the same inputs; assert they agree."""
    state = opt.init(_as_jax(inputs[0][0]))
    update = _jit(opt.update)
    seen = []
    for step, (params, grads) in enumerate(inputs, start=1):
        updates, state = update(_as_jax(grads), state, _as_jax(params))
        seen.append(jax.device_get(updates))
        for key, rule in rules.items():
            expected = rule.delta(params[key], grads[key])
            np.testing.assert_allclose(
                np.asarray(updates[key]), expected, rtol=1e-10, atol=1e-14,
                err_msg=f"{tag} {key} step {step}",
            )  # fmt: skip
    return seen


def _fraction_zero(seen: list[dict]) -> float:
    values = np.concatenate([np.ravel(u[k]) for u in seen for k in u])
    return float(np.mean(values == 0))


class _AdamWArguments(TypedDict):
    learning_rate: float
    b1: float
    b2: float
    eps: float
    weight_decay: float


ADAMW = _AdamWArguments(learning_rate=0.05, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.3)


def test_cautious_adamw_matches_the_reference_and_drops_some_coordinates() -> None:
    opt = cautious(adamw(**ADAMW))
    rules = {
        k: NumpyAdamW(s, d, 0.05, 0.8, 0.95, 1e-6, 0.3, masked="step")
        for k, (s, d) in SHAPES.items()
    }
    seen = _run_against(opt, rules, _random_inputs(STEPS, seed=1), "cautious(adamw)")
    assert 0.1 < _fraction_zero(seen) < 0.9  # the mask is neither empty nor full


def test_cautious_lion_matches_the_reference() -> None:
    opt = cautious(lion(0.02, b1=0.7, b2=0.9, weight_decay=0.5))
    real = {k: v for k, v in SHAPES.items() if v[1] == np.float64}
    rules = {k: NumpyCautiousLion(s, d, 0.02, 0.7, 0.9, 0.5) for k, (s, d) in real.items()}
    inputs = [
        ({k: p[k] for k in real}, {k: g[k] for k in real}) for p, g in _random_inputs(STEPS, 2)
    ]
    seen = _run_against(opt, rules, inputs, "cautious(lion)")
    assert 0.1 < _fraction_zero(seen) < 0.9


def test_cautious_direction_inside_a_chain_is_the_authors_c_adamw() -> None:
    """Masking the Adam direction only (ascent=True), then decaying every coordinate."""
    direction = chain(moments(0.8, 0.95), bias_correction(), normalize(1e-6))
    opt = chain(
        cautious(direction, ascent=True), add_decayed_weights(0.3), scale_by_learning_rate(0.05)
    )
    rules = {
        k: NumpyAdamW(s, d, 0.05, 0.8, 0.95, 1e-6, 0.3, masked="direction")
        for k, (s, d) in SHAPES.items()
    }
    _run_against(opt, rules, _random_inputs(STEPS, seed=3), "c-adamw")


@pytest.mark.parametrize("order", ["skip_outside", "skip_inside"])
def test_cautious_with_skip_nonfinite_skips_the_nan_step(order: str) -> None:
    """A NaN gradient gives a zero update and leaves adamw's state as it was; the next steps
    equal the reference that never saw it."""
    if order == "skip_outside":
        opt = skip_nonfinite(cautious(adamw(**ADAMW)))
    else:
        opt = cautious(skip_nonfinite(adamw(**ADAMW)))
    rules = {"a": NumpyAdamW((3, 4), np.float64, 0.05, 0.8, 0.95, 1e-6, 0.3, masked="step")}
    inputs = [({"a": p["a"]}, {"a": g["a"]}) for p, g in _random_inputs(3, seed=4)]
    params0 = _as_jax(inputs[0][0])
    state = opt.init(params0)
    update = _jit(opt.update)
    bad = {"a": jnp.asarray(inputs[0][1]["a"]).at[1, 2].set(jnp.nan)}
    updates, after = update(bad, state, params0)
    np.testing.assert_array_equal(np.asarray(updates["a"]), 0.0)
    # either way round the outer state is skip_nonfinite's (cautious keeps its inner's)
    jax.tree.map(np.testing.assert_array_equal, after.inner_state, state.inner_state)
    assert int(after.total_skips) == 1
    for params, grads in inputs:
        updates, after = update(_as_jax(grads), after, _as_jax(params))
        for key, rule in rules.items():
            expected = rule.delta(params[key], grads[key])
            np.testing.assert_allclose(np.asarray(updates[key]), expected, rtol=1e-10)


def test_cautious_state_is_the_inner_state_and_extra_args_reach_it() -> None:
    params = _as_jax(_random_inputs(1, seed=5)[0][0])
    inner = adamw(0.1)
    assert jax.tree.structure(cautious(inner).init(params)) == jax.tree.structure(
        inner.init(params)
    )
    received = {}

    class Inner:
        @staticmethod
        def init(p: Any) -> tuple:
            return ()

        @staticmethod
        def update(u: Any, s: Any, p: Any = None, *, value: Any = None) -> tuple:
            received["value"] = value
            return jax.tree.map(jnp.negative, u), s

    grads = {"w": jnp.array([1.0, -2.0, 0.0])}
    out, _ = cautious(Inner()).update(grads, (), None, value=3.0)
    assert received["value"] == 3.0
    # -g always descends: two of three kept (g = 0 is dropped), scaled by 3 / (2 + 1)
    np.testing.assert_array_equal(np.asarray(out["w"]), [-1.0, 2.0, 0.0])


# ---------------------------------------------------------------------------------------------
# StableAdamW


def test_stable_adamw_matches_the_authors_algorithm_and_clips_the_spikes() -> None:
    lr, b1, b2, eps, wd = 0.03, 0.9, 0.99, 1e-6, 0.2
    opt = stable_adamw(lr, b1, b2, eps, wd, mask={"a": True, "z": True, "c": False})
    rules = {
        k: NumpyStableAdamW(s, d, lr, b1, b2, eps, wd if k != "c" else 0.0)
        for k, (s, d) in SHAPES.items()
    }
    _run_against(opt, rules, _random_inputs(STEPS, seed=6, spike=True), "stable_adamw")
    rms = np.array(rules["a"].rms)
    assert rms[4] > 2.0 and rms[8] > 2.0  # the spikes were clipped (step divided by RMS)
    assert rms[0] == pytest.approx(1.0)  # at t = 1, u = g^2: RMS is 1 exactly


def test_update_clipping_threshold_and_default_eps_match_the_reference() -> None:
    opt = stable_adamw(0.01, weight_decay=0.0, threshold=1.5)
    rules = {
        k: NumpyStableAdamW(s, d, 0.01, 0.9, 0.99, 1e-8, 0.0, threshold=1.5)
        for k, (s, d) in SHAPES.items()
    }
    _run_against(opt, rules, _random_inputs(8, seed=7, spike=True), "threshold")
    rms = np.array(rules["a"].rms)
    assert np.any(rms > 1.5) and np.any((rms > 1.05) & (rms < 1.5))  # clipped, and let through


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: vmap over a batch equals the loop and the references


def _quadratic(params: dict) -> jax.Array:
    return jnp.sum(params["x"] ** 4 - 3.0 * params["x"] ** 2) + jnp.sum(params["y"] ** 2)


START = {"x": np.array([[0.5, -1.5], [2.0, 0.1]]), "y": np.array([1.0, -3.0, 0.2])}


def _numpy_grad(params: dict) -> dict:
    return {"x": 4.0 * params["x"] ** 3 - 6.0 * params["x"], "y": 2.0 * params["y"]}


BUILDERS: dict[str, Callable[[Any, Any], Any]] = {
    "cautious_adamw": lambda lr, h: cautious(adamw(lr, b2=h, weight_decay=0.1)),
    "stable_adamw": lambda lr, h: stable_adamw(lr, threshold=h, weight_decay=0.1),
}
MEMBERS = {"cautious_adamw": (0.999, 0.9, 0.5), "stable_adamw": (1.0, 0.5, 3.0)}


def _numpy_member(name: str, lr: float, value: float, steps: int) -> dict:
    params = {k: v.copy() for k, v in START.items()}
    if name == "cautious_adamw":
        rules = {
            k: NumpyAdamW(v.shape, v.dtype, lr, 0.9, value, 1e-8, 0.1, masked="step")
            for k, v in params.items()
        }
    else:
        rules = {
            k: NumpyStableAdamW(v.shape, v.dtype, lr, 0.9, 0.99, 1e-8, 0.1, threshold=value)
            for k, v in params.items()
        }
    for _ in range(steps):
        grads = _numpy_grad(params)
        params = {k: params[k] + rules[k].delta(params[k], grads[k]) for k in params}
    return params


def test_vmap_over_traced_hyperparameters_equals_the_loop_and_the_reference() -> None:
    check_batch_equals_loop_and_reference(
        BUILDERS, MEMBERS, [0.02, 0.05, 0.3], _quadratic, START, _numpy_member
    )


# ---------------------------------------------------------------------------------------------
# Errors name the argument


@pytest.mark.parametrize(
    ("build", "error", "named"),
    [
        (lambda: cautious(unchecked(object())), TypeError, "inner"),
        (lambda: cautious(normalize()), TypeError, "inner"),
        (lambda: cautious(chain(moments(), bias_correction())), TypeError, "inner"),
        (lambda: cautious(adamw(0.1), ascent=unchecked(1)), TypeError, "ascent"),
        (lambda: stable_adamw(0.1, b1=1.0), ValueError, "b1"),
        (lambda: stable_adamw(0.1, b2=-0.1), ValueError, "b2"),
        (lambda: stable_adamw(0.1, eps=-1.0), ValueError, "eps"),
        (lambda: stable_adamw(0.1, weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: stable_adamw(-0.1), ValueError, "learning_rate"),
        (lambda: update_clipping(threshold=0.0), ValueError, "threshold"),
        (lambda: update_clipping(threshold=-1.0), ValueError, "threshold"),
        (lambda: update_clipping(eps=unchecked("x")), TypeError, "eps"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    build: Callable[[], Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        build()


def test_misplaced_blocks_are_refused() -> None:
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, 2.0, 3.0])}
    uncorrected = chain(moments(), update_clipping(), normalize())
    with pytest.raises(TypeError, match="bias_correction"):
        uncorrected.update(grads, uncorrected.init(params), params)
    with pytest.raises(TypeError, match="moment estimator"):
        update_clipping().update(grads, (), params)
    opt = cautious(adamw(0.1))
    with pytest.raises(ValueError, match="grads"):
        opt.update({"w": jnp.ones(4)}, opt.init(params), params)
