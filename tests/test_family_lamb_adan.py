"""lamb (with the trust_ratio block) and adan against optax and a float64 NumPy reference."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax import (
    AdanMomentsState,
    adan,
    adan_moments,
    apply_updates,
    bias_correction,
    chain,
    flat,
    lamb,
    normalize,
    trust_ratio,
)
from tests.family_checks import (
    ROSENBROCK,
    check_batch_equals_loop_and_reference,
    numpy_rosenbrock_member,
    rosenbrock,
)
from tests.typed import unchecked

STEPS = 100
# XLA's backend optimizations do not change the arithmetic; without them these small programs
# compile in half the time
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# ---------------------------------------------------------------------------------------------
# The problem: a tiny tanh MLP on fixed data (a matrix and a vector leaf).

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(16, 3))
Y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
INITIAL = {"w1": _RNG.normal(size=(3, 5)), "w2": _RNG.normal(size=(5,))}


def _loss(params: dict) -> jax.Array:
    hidden = jnp.tanh(jnp.asarray(X) @ params["w1"])
    return jnp.mean((hidden @ params["w2"] - jnp.asarray(Y)) ** 2)


def _start() -> dict:
    return {k: jnp.asarray(v) for k, v in INITIAL.items()}


def _trajectories(optimizers: list[Any], apply: Callable[[Any, Any], Any]) -> list[np.ndarray]:
    """For each optimizer, the params after each of ``STEPS`` steps, flattened (shape
    ``(STEPS, 20)``); all in one compiled program."""

    def path(opt: Any, start: dict) -> jax.Array:
        def body(carry: tuple, _: Any) -> tuple:
            params, state = carry
            updates, state = opt.update(jax.grad(_loss)(params), state, params)
            params = apply(params, updates)
            return (params, state), jnp.concatenate([params["w1"].ravel(), params["w2"]])

        return jax.lax.scan(body, (start, opt.init(start)), None, STEPS)[1]

    paths = _jit(lambda p: [path(opt, p) for opt in optimizers])(_start())
    return [np.asarray(x) for x in paths]


def _flat_start() -> np.ndarray:
    return np.concatenate([INITIAL["w1"].ravel(), INITIAL["w2"]])


def _deviation(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    """``(max |ours - theirs| over all steps, max |theta_100 - theta_0|)``."""
    return float(np.max(np.abs(ours - theirs))), float(np.max(np.abs(theirs[-1] - _flat_start())))


def _decaying(start: float) -> Callable[[jax.Array], jax.Array]:
    """A schedule ``count -> start / (1 + count / 50)`` (runs under strict dtype promotion)."""
    return lambda count: start / (1.0 + jnp.asarray(count).astype(jnp.float64) / 50.0)


MASK = {"w1": True, "w2": False}
# each case builds the optimizer from a (lamb, adan) pair: adamjax's, or optax's; the
# arguments not given are the defaults, which must agree too
OPTAX_CASES: dict[str, Callable[[Any, Any], Any]] = {
    "lamb": lambda lamb_, adan_: lamb_(_decaying(0.02), weight_decay=_decaying(0.1), mask=MASK),
    "adan": lambda lamb_, adan_: adan_(_decaying(0.03), weight_decay=0.1, mask=MASK),
}


def _loss_at(row: np.ndarray) -> float:
    """:func:`_loss` at flattened params, in NumPy."""
    return float(np.mean((np.tanh(X @ row[:15].reshape(3, 5)) @ row[15:] - Y) ** 2))


@functools.cache
def _all_trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``case -> (adamjax's, optax's)`` trajectories, each side compiled as one program."""
    ours = _trajectories([build(lamb, adan) for build in OPTAX_CASES.values()], apply_updates)
    with jax.numpy_dtype_promotion("standard"):
        optimizers = [build(optax.lamb, optax.adan) for build in OPTAX_CASES.values()]
        theirs = _trajectories(optimizers, optax.apply_updates)
    return dict(zip(OPTAX_CASES, zip(ours, theirs, strict=True), strict=True))


@pytest.mark.parametrize("case", OPTAX_CASES)
def test_matches_optax_over_100_steps(case: str) -> None:
    ours, theirs = _all_trajectories()[case]
    gap, moved = _deviation(ours, theirs)
    assert moved > 0.3, case  # the trajectory went somewhere
    assert gap <= 1e-10 * moved, (case, gap, moved)
    assert _loss_at(ours[-1]) < 0.5 * _loss_at(_flat_start())  # and descended


# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy reference rules, one array at a time (no jax, optax or adamjax).


def _abs_sq(x: np.ndarray) -> np.ndarray:
    return np.real(x * np.conj(x))


class NumpyLamb:
    """You et al. 2020, Algorithm 2 with Adam's bias correction and optax's zero-norm rule."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, eps_root, wd, decays):
        self.lr, self.b1, self.b2, self.eps, self.eps_root = lr, b1, b2, eps, eps_root
        self.wd = wd if decays else 0.0
        self.m, self.v, self.t = np.zeros(shape, dtype), np.zeros(shape), 0

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * _abs_sq(g)
        m_hat, v_hat = self.m / (1 - self.b1**self.t), self.v / (1 - self.b2**self.t)
        r = m_hat / (np.sqrt(v_hat + self.eps_root) + self.eps) + self.wd * p
        p_norm, r_norm = np.sqrt(np.sum(_abs_sq(p))), np.sqrt(np.sum(_abs_sq(r)))
        ratio = 1.0 if p_norm == 0 or r_norm == 0 else p_norm / r_norm
        return -self.lr * ratio * r


class NumpyAdan:
    """Xie et al. 2022, Algorithm 1 as optax writes it: decays weigh the old averages, every
    average is bias-corrected, decoupled weight decay times the learning rate."""

    def __init__(self, shape, dtype, lr, b1, b2, b3, eps, eps_root, wd):
        self.lr, self.b1, self.b2, self.b3 = lr, b1, b2, b3
        self.eps, self.eps_root, self.wd = eps, eps_root, wd
        self.m, self.d = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.n, self.previous, self.t = np.zeros(shape), None, 0

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        b1, b2, b3 = self.b1, self.b2, self.b3
        diff = np.zeros_like(g) if self.previous is None else g - self.previous
        self.previous = g
        self.m = b1 * self.m + (1 - b1) * g
        self.d = b2 * self.d + (1 - b2) * diff
        self.n = b3 * self.n + (1 - b3) * _abs_sq(g + (1 - b2) * diff)
        self.t += 1
        t = self.t
        numerator = self.m / (1 - b1**t) + (1 - b2) * self.d / (1 - b2**t)
        u = numerator / (np.sqrt(self.n / (1 - b3**t) + self.eps_root) + self.eps)
        return -self.lr * (u + self.wd * p)


SHAPES = {"a": ((3, 4), np.float64), "z": ((5,), np.complex128)}


def _random_inputs(steps: int, seed: int) -> list[tuple[dict, dict]]:
    """``(params, grads)`` for each step: random values of changing scale; one step has a zero
    param leaf and a zero gradient leaf (the trust ratio's special cases)."""
    rng = np.random.default_rng(seed)

    def draw(shape: tuple, dtype: Any) -> np.ndarray:
        x = rng.normal(size=shape) * rng.uniform(0.01, 3.0)
        return (x + 1j * rng.normal(size=shape)).astype(dtype) if dtype == np.complex128 else x

    out = []
    for step in range(steps):
        params = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        grads = {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}
        if step == 0:
            params["a"] = np.zeros_like(params["a"])
            grads["z"] = np.zeros_like(grads["z"])
        out.append((params, grads))
    return out


PER_LEAF = {
    "lamb": {
        "learning_rate": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.999, "z": 0.9},
        "eps": {"a": 1e-6, "z": 1e-3},
        "eps_root": {"a": 0.0, "z": 1e-4},
        "weight_decay": {"a": 0.1, "z": 0.3},
    },
    "adan": {
        "learning_rate": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.98, "z": 0.7},
        "b2": {"a": 0.92, "z": 0.6},
        "b3": {"a": 0.99, "z": 0.8},
        "eps": {"a": 1e-8, "z": 1e-3},
        "eps_root": {"a": 1e-8, "z": 1e-4},
        "weight_decay": {"a": 0.0, "z": 0.2},
    },
}


def _numpy_rules(name: str) -> dict[str, Any]:
    values = PER_LEAF[name]
    rules = {}
    for key, (shape, dtype) in SHAPES.items():
        own = [values[arg][key] for arg in values]
        if name == "lamb":
            rules[key] = NumpyLamb(shape, dtype, *own, decays=key == "a")
        else:
            lr, b1, b2, b3, eps, eps_root, wd = own
            rules[key] = NumpyAdan(shape, dtype, lr, b1, b2, b3, eps, eps_root, wd)
    return rules


@pytest.mark.parametrize("name", ["lamb", "adan"])
def test_matches_numpy_reference_step_by_step_with_per_leaf_values(name: str) -> None:
    arguments = dict(PER_LEAF[name])
    if name == "lamb":
        arguments["mask"] = {"a": True, "z": False}
    opt = {"lamb": lamb, "adan": adan}[name](**arguments)
    rules = _numpy_rules(name)
    inputs = _random_inputs(30, seed=1)
    state = opt.init({k: jnp.asarray(v) for k, v in inputs[0][0].items()})
    update = _jit(opt.update)
    for step, (params, grads) in enumerate(inputs, start=1):
        as_jax = {k: jnp.asarray(v) for k, v in grads.items()}
        updates, state = update(as_jax, state, {k: jnp.asarray(v) for k, v in params.items()})
        for key, rule in rules.items():
            expected = rule.delta(params[key], grads[key])
            np.testing.assert_allclose(
                np.asarray(updates[key]), expected, rtol=1e-10, atol=1e-300,
                err_msg=f"{name} {key} step {step}",
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The trust_ratio block


def test_trust_ratio_matches_optax_including_zero_norms() -> None:
    rng = np.random.default_rng(2)
    params = {
        "zero_param": np.zeros(3),
        "zero_update": rng.normal(size=(2, 2)),
        "both": rng.normal(size=(4, 3)),
    }
    updates = {
        "zero_param": np.array([1.0, -2.0, 0.5]),
        "zero_update": np.zeros((2, 2)),
        "both": rng.normal(size=(4, 3)) * 1e-2,
    }
    settings = ({}, {"min_norm": 0.5, "trust_coefficient": 0.02, "eps": 1e-3})

    def apply_all(make: Callable[..., Any]) -> list[dict]:
        return jax.device_get(
            _jit(lambda u, p: [make(**o).update(u, (), p)[0] for o in settings])(updates, params)
        )

    ours = apply_all(trust_ratio)
    with jax.numpy_dtype_promotion("standard"):
        theirs = apply_all(optax.scale_by_trust_ratio)
    for mine, reference in zip(ours, theirs, strict=True):
        for key in params:
            np.testing.assert_allclose(mine[key], reference[key], rtol=1e-14, err_msg=key)
    plain = ours[0]
    np.testing.assert_array_equal(plain["zero_param"], updates["zero_param"])  # ratio 1
    np.testing.assert_array_equal(plain["zero_update"], np.zeros((2, 2)))  # no 0 / 0
    ratio = np.linalg.norm(params["both"]) / np.linalg.norm(updates["both"])
    np.testing.assert_allclose(plain["both"], ratio * updates["both"], rtol=1e-14)
    assert abs(ratio - 1.0) > 0.5  # the rescaling is visible


def test_trust_ratio_on_flat_params_uses_each_original_leafs_norm() -> None:
    """A FlatParams buffer holds several leaves; the ratio is still each leaf's, as on the tree
    (one norm for the whole buffer would rescale w1 and w2 alike)."""
    rng = np.random.default_rng(3)
    params = {"w1": rng.normal(size=(3, 5)), "b": np.zeros(4), "w2": 10.0 * rng.normal(size=5)}
    updates = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
    packed_params = flat.ravel(params)
    packed_updates = packed_params.layout.ravel(updates)
    block = trust_ratio(trust_coefficient=0.1)
    on_tree, on_flat = jax.device_get(
        _jit(
            lambda u, p, fu, fp: (
                block.update(u, (), p)[0],
                block.update(fu, (), fp)[0].unravel(),
            )
        )(updates, params, packed_updates, packed_params)
    )
    assert len(packed_params.buffers) == 1  # all three leaves in one buffer
    for key in params:
        np.testing.assert_allclose(on_flat[key], on_tree[key], rtol=1e-14, err_msg=key)
    for key in ("w1", "w2"):
        ratio = 0.1 * np.linalg.norm(params[key]) / np.linalg.norm(updates[key])
        np.testing.assert_allclose(on_tree[key], ratio * updates[key], rtol=1e-14)
    np.testing.assert_array_equal(on_tree["b"], updates["b"])  # zero param: ratio 1


# ---------------------------------------------------------------------------------------------
# The adan_moments block


def test_adan_moments_first_difference_is_zero_and_state_is_kept() -> None:
    block = adan_moments(0.5, 0.25, 0.75)
    params = jnp.zeros(2)
    state = block.init(params)
    assert isinstance(state, AdanMomentsState)
    update = _jit(block.update)
    g1, g2 = np.array([1.0, -2.0]), np.array([3.0, 2.0])
    estimates, state = update(jnp.asarray(g1), state, params)
    np.testing.assert_allclose(estimates.mu, g1, rtol=1e-15)  # m / (1 - b1) = g, d = 0
    np.testing.assert_allclose(estimates.nu, g1**2, rtol=1e-15)
    np.testing.assert_array_equal(state.delta, [0.0, 0.0])
    np.testing.assert_array_equal(state.previous, g1)
    estimates, state = update(jnp.asarray(g2), state, params)
    np.testing.assert_allclose(state.delta, 0.75 * (g2 - g1), rtol=1e-15)
    assert estimates.corrected and int(estimates.count) == 2
    with pytest.raises(TypeError, match="already corrected"):
        _jit(chain(adan_moments(), bias_correction(), normalize()).update)(g1, (state, (), ()))


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: vmap over a batch equals the loop and each member's reference


BATCHES = {  # (alias, the hyperparameter batched alongside the learning rate, its values)
    "lamb": (lamb, "b1", (0.9, 0.5, 0.0)),
    "adan": (adan, "b3", (0.99, 0.9, 0.5)),
}

REFERENCE_RULES = {"lamb": NumpyLamb, "adan": NumpyAdan}
REFERENCE_DEFAULTS = {  # the aliases' defaults, in the reference's names
    "lamb": {"b1": 0.9, "b2": 0.999, "eps": 1e-6, "eps_root": 0.0, "wd": 0.0, "decays": True},
    "adan": {"b1": 0.98, "b2": 0.92, "b3": 0.99, "eps": 1e-8, "eps_root": 1e-8, "wd": 0.0},
}


_numpy_member = numpy_rosenbrock_member(REFERENCE_DEFAULTS, REFERENCE_RULES, BATCHES)


def test_vmap_over_traced_hyperparameters_equals_the_loop_and_the_reference() -> None:
    check_batch_equals_loop_and_reference(
        {name: functools.partial(_build, alias, arg) for name, (alias, arg, _) in BATCHES.items()},
        {name: batch[2] for name, batch in BATCHES.items()},
        [0.01, 0.03, 0.1],
        rosenbrock,
        ROSENBROCK,
        _numpy_member,
    )


def _build(alias: Callable[..., Any], arg: str, lr: Any, value: Any) -> Any:
    return alias(lr, **{arg: value})


# ---------------------------------------------------------------------------------------------
# Arguments: optax's names, order and defaults; bad values named


@pytest.mark.parametrize(("ours", "theirs"), [(lamb, optax.lamb), (adan, optax.adan)])
def test_arguments_are_optaxs_in_optaxs_order_with_its_defaults(ours: Any, theirs: Any) -> None:
    mine = list(inspect.signature(ours).parameters.values())
    reference = list(inspect.signature(theirs).parameters.values())
    assert [p.name for p in mine[: len(reference)]] == [p.name for p in reference]
    for p, q in zip(mine, reference, strict=False):
        assert p.default == q.default, p.name
    assert all(p.kind is p.KEYWORD_ONLY for p in mine[len(reference) :])


@pytest.mark.parametrize(
    ("build", "error", "named"),
    [
        (lambda: lamb(0.1, b1=1.0), ValueError, "b1"),
        (lambda: lamb(0.1, b2=-0.5), ValueError, "b2"),
        (lambda: lamb(0.1, eps=-1e-6), ValueError, "eps"),
        (lambda: lamb(0.1, eps_root=-1.0), ValueError, "eps_root"),
        (lambda: lamb(0.1, weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: lamb(-0.1), ValueError, "learning_rate"),
        (lambda: lamb(0.1, b1=jnp.ones(3)), ValueError, "b1"),
        (lambda: trust_ratio(min_norm=-1.0), ValueError, "min_norm"),
        (lambda: trust_ratio(eps=-1.0), ValueError, "eps"),
        (lambda: trust_ratio(trust_coefficient=float("nan")), ValueError, "trust_coefficient"),
        (lambda: adan(0.1, b1=1.0), ValueError, "b1"),
        (lambda: adan(0.1, b2=1.5), ValueError, "b2"),
        (lambda: adan(0.1, b3=-0.1), ValueError, "b3"),
        (lambda: adan(0.1, eps=-1.0), ValueError, "eps"),
        (lambda: adan(0.1, eps_root=-1e-8), ValueError, "eps_root"),
        (lambda: adan(0.1, weight_decay=-1.0), ValueError, "weight_decay"),
        (lambda: adan(unchecked(None)), TypeError, "learning_rate"),
        (lambda: adan(0.1, b3=unchecked("0.99")), TypeError, "b3"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    build: Callable[[], Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        build()


def test_trust_ratio_needs_params_and_per_leaf_values_must_match() -> None:
    with pytest.raises(ValueError, match="params"):
        trust_ratio().update({"w": jnp.ones(2)}, ())
    opt = adan(0.1, b1={"w1": 0.9, "extra": 0.5})
    with pytest.raises(ValueError, match="b1"):
        opt.init(_start())
