"""ademamix (slow_momentum) and adopt (adopt_normalize, clip_by_schedule, ema_momentum) against
optax's contrib optimizers and a float64 NumPy reference."""

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
    AdoptNormalizeState,
    SlowMomentumState,
    ademamix,
    adopt,
    apply_updates,
    bias_correction,
    chain,
    clip_by_schedule,
    ema_momentum,
    moments,
    normalize,
    quarter_power,
    slow_momentum,
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


def _loss_at(row: np.ndarray) -> float:
    """:func:`_loss` at flattened params, in NumPy."""
    return float(np.mean((np.tanh(X @ row[:15].reshape(3, 5)) @ row[15:] - Y) ** 2))


def _flat_start() -> np.ndarray:
    return np.concatenate([INITIAL["w1"].ravel(), INITIAL["w2"]])


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

    start = {k: jnp.asarray(v) for k, v in INITIAL.items()}
    paths = _jit(lambda p: [path(opt, p) for opt in optimizers])(start)
    return [np.asarray(x) for x in paths]


def _as_float(count: Any) -> jax.Array:
    return jnp.asarray(count).astype(jnp.float64)


def _decaying(start: float) -> Callable[[jax.Array], jax.Array]:
    """A schedule ``count -> start / (1 + count / 50)`` (runs under strict dtype promotion)."""
    return lambda count: start / (1.0 + _as_float(count) / 50.0)


def _b3_warm_up(count: Any) -> jax.Array:
    """From 0.9 towards 0.999 (the paper warms b3 up from b1)."""
    return 0.999 - 0.099 * jnp.exp(-_as_float(count) / 30.0)


def _alpha_warm_up(count: Any) -> jax.Array:
    """Linearly from 0 to 5 over 50 steps, then 5."""
    return jnp.minimum(5.0, 0.1 * _as_float(count))


def _linear_clip(count: Any) -> jax.Array:
    return 0.5 + 0.1 * _as_float(count)


MASK = {"w1": True, "w2": False}
# each case builds the optimizer from an (ademamix, adopt) pair: adamjax's, or optax's; the
# arguments not given are the defaults, which must agree too
OPTAX_CASES: dict[str, Callable[[Any, Any], Any]] = {
    "ademamix": lambda ademamix_, adopt_: ademamix_(
        _decaying(0.02), b3=_b3_warm_up, alpha=_alpha_warm_up, weight_decay=0.1, mask=MASK
    ),
    "adopt": lambda ademamix_, adopt_: adopt_(_decaying(0.03)),
    "adopt-nesterov-clip": lambda ademamix_, adopt_: adopt_(
        0.02, 0.8, 0.99, 1e-6, nesterov=True, clip_value_fn=_linear_clip
    ),
    "adopt-no-clipping": lambda ademamix_, adopt_: adopt_(0.01, b2=0.99, use_clipping=False),
}


@functools.cache
def _all_trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``case -> (adamjax's, optax's)`` trajectories, each side compiled as one program."""
    builds = OPTAX_CASES.values()
    ours = _trajectories([build(ademamix, adopt) for build in builds], apply_updates)
    with jax.numpy_dtype_promotion("standard"):
        contrib = optax.contrib
        optimizers = [build(contrib.ademamix, contrib.adopt) for build in builds]
        theirs = _trajectories(optimizers, optax.apply_updates)
    return dict(zip(OPTAX_CASES, zip(ours, theirs, strict=True), strict=True))


@pytest.mark.parametrize("case", OPTAX_CASES)
def test_matches_optax_over_100_steps(case: str) -> None:
    ours, theirs = _all_trajectories()[case]
    gap = float(np.max(np.abs(ours - theirs)))
    moved = float(np.max(np.abs(theirs[-1] - _flat_start())))
    assert moved > 0.3, case  # the trajectory went somewhere
    assert gap <= 1e-10 * moved, (case, gap, moved)
    assert _loss_at(ours[-1]) < 0.5 * _loss_at(_flat_start())  # and descended


# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy reference rules, one array at a time (no jax, optax or adamjax).


def _abs_sq(x: np.ndarray) -> np.ndarray:
    return np.real(x * np.conj(x))


class NumpyAdEMAMix:
    """Pagliardini et al. 2024, Algorithm 1 (optax's: m1 and v bias-corrected, m2 not), with
    decoupled weight decay times the learning rate."""

    def __init__(self, shape, dtype, lr, b1, b2, b3, alpha, eps, eps_root, wd):
        self.lr, self.b1, self.b2, self.b3, self.alpha = lr, b1, b2, b3, alpha
        self.eps, self.eps_root, self.wd = eps, eps_root, wd
        self.m1, self.m2 = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.v, self.t = np.zeros(shape), 0

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        b1, b2, b3 = self.b1, self.b2, self.b3
        self.t += 1
        self.m1 = b1 * self.m1 + (1 - b1) * g
        self.m2 = b3 * self.m2 + (1 - b3) * g
        self.v = b2 * self.v + (1 - b2) * _abs_sq(g)
        m_hat, v_hat = self.m1 / (1 - b1**self.t), self.v / (1 - b2**self.t)
        u = (m_hat + self.alpha * self.m2) / (np.sqrt(v_hat + self.eps_root) + self.eps)
        return -self.lr * (u + self.wd * p)


class NumpyADOPT:
    """Taniguchi et al. 2024, Algorithm 2 (clipped) as optax runs it: the first step only sets
    v = g^2; then u = clip(g / max(sqrt(v_prev), eps), c(t - 1)), m = b1 m + (1 - b1) u.
    A complex u keeps its phase and has its magnitude clipped."""

    def __init__(self, shape, dtype, lr, b1, b2, eps, nesterov=False, clip=lambda k: k**0.25):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.nesterov, self.clip = nesterov, clip
        self.m, self.v, self.t = np.zeros(shape, dtype), np.zeros(shape), 0

    def _clipped(self, u: np.ndarray) -> np.ndarray:
        if self.clip is None:
            return u
        c = self.clip(self.t)
        size = np.abs(u)
        return np.where(size > c, u * (c / np.where(size > c, size, 1.0)), u)

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        del p
        if self.t == 0:
            self.v, self.t = _abs_sq(g), 1
            return np.zeros_like(g)
        u = self._clipped(g / np.maximum(np.sqrt(self.v), self.eps))
        self.v = self.b2 * self.v + (1 - self.b2) * _abs_sq(g)
        self.m = self.b1 * self.m + (1 - self.b1) * u
        step = self.b1 * self.m + (1 - self.b1) * u if self.nesterov else self.m
        self.t += 1
        return -self.lr * step


SHAPES = {"a": ((3, 4), np.float64), "z": ((5,), np.complex128)}


def _random_inputs(steps: int, seed: int) -> list[tuple[dict, dict]]:
    """``(params, grads)`` for each step: random values of changing scale (params matter only
    through the weight decay)."""
    rng = np.random.default_rng(seed)

    def draw(shape: tuple, dtype: Any) -> np.ndarray:
        x = rng.normal(size=shape) * rng.uniform(0.01, 3.0)
        return (x + 1j * rng.normal(size=shape)).astype(dtype) if dtype == np.complex128 else x

    def draw_tree() -> dict[str, np.ndarray]:
        return {k: draw(shape, dtype) for k, (shape, dtype) in SHAPES.items()}

    return [(draw_tree(), draw_tree()) for _ in range(steps)]


PER_LEAF = {
    "ademamix": {
        "learning_rate": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.999, "z": 0.9},
        "b3": {"a": 0.999, "z": 0.95},
        "alpha": {"a": 5.0, "z": 2.0},
        "eps": {"a": 1e-8, "z": 1e-3},
        "eps_root": {"a": 0.0, "z": 1e-4},
        "weight_decay": {"a": 0.1, "z": 0.3},
    },
    "adopt": {
        "learning_rate": {"a": 0.05, "z": 0.01},
        "b1": {"a": 0.9, "z": 0.5},
        "b2": {"a": 0.9999, "z": 0.9},
        "eps": {"a": 1e-6, "z": 1e-2},
    },
}
REFERENCE_CASES = [
    ("ademamix", {}),
    ("adopt", {}),
    ("adopt", {"nesterov": True, "use_clipping": False}),
]


def _numpy_rules(name: str, options: dict) -> dict[str, Any]:
    values = PER_LEAF[name]
    rules = {}
    for key, (shape, dtype) in SHAPES.items():
        own = [values[arg][key] for arg in values]
        if name == "ademamix":
            # the test masks the weight decay to leaf "a"
            own[-1] = own[-1] if key == "a" else 0.0
            rules[key] = NumpyAdEMAMix(shape, dtype, *own)
        else:
            clip = None if options.get("use_clipping") is False else (lambda k: k**0.25)
            nesterov = options.get("nesterov", False)
            rules[key] = NumpyADOPT(shape, dtype, *own, nesterov=nesterov, clip=clip)
    return rules


@pytest.mark.parametrize(("name", "options"), REFERENCE_CASES)
def test_matches_numpy_reference_step_by_step_with_per_leaf_values(
    name: str, options: dict
) -> None:
    arguments = dict(PER_LEAF[name], **options)
    if name == "ademamix":
        arguments["mask"] = {"a": True, "z": False}
    opt = {"ademamix": ademamix, "adopt": adopt}[name](**arguments)
    rules = _numpy_rules(name, options)
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
                err_msg=f"{name} {options} {key} step {step}",
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The blocks


def test_adopt_first_step_only_measures_and_the_second_is_clipped_to_one() -> None:
    b1, lr = 0.75, 0.5
    opt = adopt(lr, b1=b1, b2=0.5)
    params = jnp.zeros(3)
    update = _jit(opt.update)
    g1, g2 = np.array([2.0, -1e-3, 0.0]), np.array([1.0, 1.0, 3.0])
    updates, state = update(jnp.asarray(g1), opt.init(params), params)
    np.testing.assert_array_equal(updates, np.zeros(3))
    normalize_state = state[0]
    assert isinstance(normalize_state, AdoptNormalizeState)
    np.testing.assert_array_equal(normalize_state.nu, g1**2)  # v_1 = g_1^2, not (1 - b2) g_1^2
    updates, state = update(jnp.asarray(g2), state, params)
    # u_2 = clip(g_2 / max(|g_1|, 1e-6), 1): [0.5, 1 (from 1000), 1 (from 3e6)]
    np.testing.assert_allclose(updates, -lr * (1 - b1) * np.array([0.5, 1.0, 1.0]), rtol=1e-15)
    np.testing.assert_allclose(state[0].nu, 0.5 * g1**2 + 0.5 * g2**2, rtol=1e-15)


def test_clip_by_schedule_uses_the_step_count_and_keeps_complex_phase() -> None:
    block = clip_by_schedule(lambda count: 0.5 * (_as_float(count) + 1.0))
    update = _jit(block.update)
    u = {"r": jnp.asarray([-3.0, 0.2, 0.9]), "c": jnp.asarray([3.0 + 4.0j, 0.3j])}
    out, state = update(u, block.init(u))
    np.testing.assert_allclose(out["r"], [-0.5, 0.2, 0.5], rtol=1e-15)
    np.testing.assert_allclose(out["c"], [0.3 + 0.4j, 0.3j], rtol=1e-15)  # |.| <= 0.5, phase kept
    out, state = update(u, state)
    np.testing.assert_allclose(out["r"], [-1.0, 0.2, 0.9], rtol=1e-15)
    assert int(state.count) == 2
    with pytest.raises(ValueError, match="clip_value_fn"):
        clip_by_schedule(lambda count: -1.0).update(u, block.init(u))


def test_ema_momentum_stores_mu_dtype_and_returns_the_unrounded_average() -> None:
    block = ema_momentum(0.5, mu_dtype=jnp.float32)
    params = jnp.zeros(2)
    state = block.init(params)
    assert state.mu.dtype == jnp.float32
    out, state = _jit(block.update)(jnp.asarray([1.0 / 3.0, 1.0]), state)
    assert out.dtype == jnp.float64 and state.mu.dtype == jnp.float32
    np.testing.assert_array_equal(out, np.array([1.0 / 3.0, 1.0]) * 0.5)  # not rounded to f32


def test_slow_momentum_adds_the_uncorrected_slow_average_after_bias_correction() -> None:
    b1, b3, alpha = 0.5, 0.75, 2.0
    opt = chain(moments(b1, 0.5), bias_correction(), slow_momentum(b3, alpha))
    params = jnp.zeros(2)
    g = np.array([1.0, -2.0])
    estimates, state = _jit(opt.update)(jnp.asarray(g), opt.init(params))
    assert isinstance(state[2], SlowMomentumState)
    np.testing.assert_allclose(state[2].slow, (1 - b3) * g, rtol=1e-15)
    np.testing.assert_allclose(estimates.mu, g + alpha * (1 - b3) * g, rtol=1e-15)  # m_hat = g
    misplaced = chain(moments(), slow_momentum(), bias_correction(), normalize())
    with pytest.raises(TypeError, match="bias_correction"):
        _jit(misplaced.update)(jnp.asarray(g), misplaced.init(params))


def test_ademamix_mu_dtype_stores_both_averages_and_v_as_optax() -> None:
    params = {"w": jnp.zeros(3)}  # float64
    state = ademamix(0.1, mu_dtype=jnp.float32).init(params)
    assert state[0].mu["w"].dtype == jnp.float32
    assert state[0].nu["w"].dtype == jnp.float32  # optax stores nu in mu_dtype too
    assert state[2].slow["w"].dtype == jnp.float32
    own = ademamix(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float64).init(params)
    assert own[0].nu["w"].dtype == jnp.float64


# ---------------------------------------------------------------------------------------------
# Traced hyperparameters: vmap over a batch equals the loop and each member's reference


BATCHES = {  # (alias, the hyperparameter batched alongside the learning rate, its values)
    "ademamix": (ademamix, "alpha", (5.0, 1.0, 0.0)),
    "adopt": (adopt, "b2", (0.9999, 0.9, 0.5)),
}

REFERENCE_RULES = {"ademamix": NumpyAdEMAMix, "adopt": NumpyADOPT}
REFERENCE_DEFAULTS = {  # the aliases' defaults, in the reference's names
    "ademamix": {
        "b1": 0.9,
        "b2": 0.999,
        "b3": 0.9999,
        "alpha": 5.0,
        "eps": 1e-8,
        "eps_root": 0.0,
        "wd": 0.0,
    },
    "adopt": {"b1": 0.9, "b2": 0.9999, "eps": 1e-6},
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


@pytest.mark.parametrize("name", ["ademamix", "adopt"])
def test_arguments_are_optaxs_in_optaxs_order_with_its_defaults(name: str) -> None:
    ours = {"ademamix": ademamix, "adopt": adopt}[name]
    mine = inspect.signature(ours).parameters
    reference = inspect.signature(getattr(optax.contrib, name)).parameters
    assert list(mine)[: len(reference)] == list(reference)
    for arg, parameter in reference.items():
        assert mine[arg].kind == parameter.kind, arg
        if arg != "clip_value_fn":
            assert mine[arg].default == parameter.default, arg
    assert all(
        mine[arg].kind is inspect.Parameter.KEYWORD_ONLY for arg in list(mine)[len(reference) :]
    )
    if name == "adopt":  # optax's default clip bound is lambda x: x**0.25
        counts = jnp.arange(6, dtype=jnp.int32)
        with jax.numpy_dtype_promotion("standard"):
            theirs = reference["clip_value_fn"].default(counts)
        np.testing.assert_allclose(quarter_power(counts), theirs, rtol=1e-15)


@pytest.mark.parametrize(
    ("build", "error", "named"),
    [
        (lambda: ademamix(0.1, b1=1.0), ValueError, "b1"),
        (lambda: ademamix(0.1, b2=-0.1), ValueError, "b2"),
        (lambda: ademamix(0.1, b3=1.0), ValueError, "b3"),
        (lambda: ademamix(0.1, alpha=float("nan")), ValueError, "alpha"),
        (lambda: ademamix(0.1, alpha=unchecked("5")), TypeError, "alpha"),
        (lambda: ademamix(0.1, eps=-1.0), ValueError, "eps"),
        (lambda: ademamix(0.1, eps_root=-1.0), ValueError, "eps_root"),
        (lambda: ademamix(0.1, weight_decay=-0.1), ValueError, "weight_decay"),
        (lambda: ademamix(0.1, mu_dtype=jnp.int32), TypeError, "mu_dtype"),
        (lambda: ademamix(-0.1), ValueError, "learning_rate"),
        (lambda: adopt(0.1, b1=1.0), ValueError, "b1"),
        (lambda: adopt(0.1, b2=1.5), ValueError, "b2"),
        (lambda: adopt(0.1, eps=-1e-6), ValueError, "eps"),
        (lambda: adopt(0.1, clip_value_fn=unchecked(0.25)), TypeError, "clip_value_fn"),
        (lambda: adopt(unchecked(None)), TypeError, "learning_rate"),
        (lambda: adopt(0.1, b2=jnp.ones(3)), ValueError, "b2"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    build: Callable[[], Any], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        build()


def test_schedule_values_out_of_range_are_named() -> None:
    params = {"w": jnp.ones(2)}
    for opt, named in (
        (ademamix(0.1, b3=lambda count: 1.5), "b3 schedule"),
        (adopt(lambda count: -0.1), "learning_rate schedule"),
    ):
        with pytest.raises(ValueError, match=named):  # a constant: checked while tracing
            _jit(opt.update)(params, opt.init(params), params)
    ok = ademamix(0.1, alpha=lambda count: -1.0)  # any real alpha, as in optax
    updates, _ = _jit(ok.update)(params, ok.init(params), params)
    assert np.all(np.isfinite(np.asarray(updates["w"])))
