"""adafactor (factored_second_moment, clip_by_block_rms, scale_by_param_block_rms) against
optax's adafactor and a float64 NumPy reference."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax import adafactor, apply_updates, factored_second_moment
from tests.family_checks import check_leaves_against_references
from tests.typed import unchecked

STEPS = 100
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

# ---------------------------------------------------------------------------------------------
# The problem: a tanh layer with a 130x140 matrix (factored at optax's default of 128) and a
# 140-vector bias, on fixed data.

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(8, 130))
C = _RNG.normal(size=(140,)) / 12
Y = np.sin(X[:, :3] @ np.array([1.0, -2.0, 0.5]))
INITIAL = {"w": _RNG.normal(size=(130, 140)) / 10, "b": _RNG.normal(size=(140,))}


def _loss(params: dict) -> jax.Array:
    hidden = jnp.tanh(jnp.asarray(X) @ params["w"] + params["b"][None, :])
    return jnp.mean((hidden @ jnp.asarray(C) - jnp.asarray(Y)) ** 2)


def _flat(params: dict) -> Any:
    return jnp.concatenate([params["w"].ravel(), params["b"]])


def _trajectories(optimizers: list[Any], apply: Callable[[Any, Any], Any]) -> list[np.ndarray]:
    """For each optimizer, the flattened params after each of ``STEPS`` steps (one program)."""

    def path(opt: Any, start: dict) -> jax.Array:
        def body(carry: tuple, _: Any) -> tuple:
            params, state = carry
            updates, state = opt.update(jax.grad(_loss)(params), state, params)
            params = apply(params, updates)
            return (params, state), _flat(params)

        return jax.lax.scan(body, (start, opt.init(start)), None, STEPS)[1]

    start = {k: jnp.asarray(v) for k, v in INITIAL.items()}
    return [np.asarray(x) for x in _jit(lambda p: [path(o, p) for o in optimizers])(start)]


def _decaying(count: Any) -> jax.Array:
    return 0.05 / (1.0 + jnp.asarray(count).astype(jnp.float64) / 50.0)


CASES: dict[str, Callable[[Any], Any]] = {
    "defaults": lambda build: build(0.05),
    "momentum-decay-schedule": lambda build: build(
        _decaying,
        decay_rate=0.7,
        decay_offset=-3,
        clipping_threshold=0.5,
        momentum=0.8,
        dtype_momentum=jnp.float64,
        weight_decay_rate=1e-3,
        weight_decay_mask={"w": True, "b": False},
    ),
    "unfactored-absolute": lambda build: build(
        0.01, multiply_by_parameter_scale=False, clipping_threshold=None, factored=False
    ),
    "small-min-dim-no-lr": lambda build: build(None, min_dim_size_to_factor=16, eps=1e-20),
}


@functools.cache
def _all_trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ours = _trajectories([case(adafactor) for case in CASES.values()], apply_updates)
    with jax.numpy_dtype_promotion("standard"):
        theirs = _trajectories(
            [case(optax.adafactor) for case in CASES.values()], optax.apply_updates
        )
    return dict(zip(CASES, zip(ours, theirs, strict=True), strict=True))


@pytest.mark.parametrize("case", CASES)
def test_matches_optax_over_100_steps(case: str) -> None:
    ours, theirs = _all_trajectories()[case]
    start = np.asarray(_flat({k: jnp.asarray(v) for k, v in INITIAL.items()}))
    gap = float(np.max(np.abs(ours - theirs)))
    moved = float(np.max(np.abs(theirs[-1] - start)))
    assert moved > 0.05, case  # the trajectory went somewhere
    assert gap <= 1e-10 * moved, (case, gap, moved)
    unflat = {"w": ours[-1][: 130 * 140].reshape(130, 140), "b": ours[-1][130 * 140 :]}
    assert float(_loss(unflat)) < float(_loss(INITIAL)), case  # and descended


# ---------------------------------------------------------------------------------------------
# Independent float64 NumPy reference (Shazeer & Stern 2018, Algorithm 4 with optax's options).


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


class NumpyAdafactor:
    """One leaf. The decay 1 - t^(-gamma) is computed in float32, as optax does."""

    def __init__(self, shape, lr, gamma, offset, min_dim, clip, momentum, wd, eps, scale):
        self.lr, self.gamma, self.offset, self.clip = lr, gamma, offset, clip
        self.momentum, self.wd, self.eps, self.scale = momentum, wd, eps, scale
        order = sorted(range(len(shape)), key=lambda i: (shape[i], i))
        big = len(shape) >= 2 and shape[order[-2]] >= min_dim
        self.dims = (order[-2], order[-1]) if big else None
        if self.dims:
            self.row = np.zeros(np.delete(shape, self.dims[1]))
            self.col = np.zeros(np.delete(shape, self.dims[0]))
        else:
            self.v = np.zeros(shape)
        self.m, self.t = np.zeros(shape), 0

    def _normalized(self, g: np.ndarray) -> np.ndarray:
        self.t += 1
        decay = float(np.float32(1) - np.float32(self.t - self.offset) ** np.float32(-self.gamma))
        sq = g * g + self.eps
        if self.dims is None:
            self.v = decay * self.v + (1 - decay) * sq
            return g / np.sqrt(self.v)
        rows_axis, cols_axis = self.dims  # second largest, largest
        self.row = decay * self.row + (1 - decay) * sq.mean(axis=cols_axis)
        self.col = decay * self.col + (1 - decay) * sq.mean(axis=rows_axis)
        r = np.expand_dims(self.row, cols_axis)
        c = np.expand_dims(self.col, rows_axis)
        mean_r = np.expand_dims(
            self.row.mean(axis=rows_axis - (rows_axis > cols_axis)), (rows_axis, cols_axis)
        )
        return g / np.sqrt(r * c / mean_r)

    def delta(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        u = self._normalized(g)
        u = u / max(1.0, _rms(u) / self.clip)
        u = self.lr * max(_rms(p), 1e-3) * u
        self.m = self.momentum * self.m + (1 - self.momentum) * u
        return -(self.m + self.wd * p)


SHAPES = {"a": (6, 5), "b": (2, 4, 7), "c": (5,), "d": (3, 2)}


def test_matches_numpy_reference_step_by_step() -> None:
    opt = adafactor(
        0.1,
        4,
        decay_rate=0.6,
        decay_offset=-2,
        clipping_threshold=0.7,
        eps=1e-12,
        momentum=0.5,
        dtype_momentum=jnp.float64,
        weight_decay_rate=0.01,
    )
    refs = {
        k: NumpyAdafactor(s, 0.1, 0.6, -2, 4, 0.7, 0.5, 0.01, 1e-12, True)
        for k, s in SHAPES.items()
    }
    rng = np.random.default_rng(1)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    state = opt.init(jax.tree.map(jnp.asarray, params))
    step = _jit(opt.update)
    for t in range(12):
        grads = {k: rng.normal(size=s) * 10.0 ** rng.uniform(-3, 2) for k, s in SHAPES.items()}
        updates, state = step(
            jax.tree.map(jnp.asarray, grads), state, jax.tree.map(jnp.asarray, params)
        )
        for k in SHAPES:
            expected = refs[k].delta(params[k], grads[k])
            np.testing.assert_allclose(
                np.asarray(updates[k]), expected, rtol=1e-12, atol=1e-300, err_msg=f"{k} {t}"
            )
            params[k] = params[k] + expected
    assert refs["a"].dims == (1, 0) and refs["b"].dims == (1, 2) and refs["d"].dims is None


# each leaf its own hyperparameters; eps differs element by element on the unfactored "c"
PER_LEAF = {
    "a": {"lr": 0.1, "gamma": 0.6, "offset": -2, "clip": 0.7, "momentum": 0.5, "wd": 0.01},
    "b": {"lr": 0.05, "gamma": 0.8, "offset": 0, "clip": 1.5, "momentum": 0.0, "wd": 0.0},
    "c": {"lr": 0.2, "gamma": 0.5, "offset": -3, "clip": 0.3, "momentum": 0.9, "wd": 0.1},
    "d": {"lr": 0.01, "gamma": 1.0, "offset": -1, "clip": 2.0, "momentum": 0.2, "wd": 0.05},
}
PER_LEAF_EPS = {"a": 1e-12, "b": 1e-20, "c": np.array([1e-3, 1e-6, 1e-9, 1e-12, 0.0]), "d": 1e-8}


@pytest.mark.slow
def test_per_leaf_hyperparameters_match_the_reference_leaf_by_leaf() -> None:
    def tree(key: str) -> dict[str, Any]:
        return {k: values[key] for k, values in PER_LEAF.items()}

    opt = adafactor(
        tree("lr"),
        4,
        decay_rate=tree("gamma"),
        decay_offset=tree("offset"),
        clipping_threshold=tree("clip"),
        momentum=tree("momentum"),
        dtype_momentum=jnp.float64,
        weight_decay_rate=tree("wd"),
        eps=PER_LEAF_EPS,
    )
    refs = {
        k: NumpyAdafactor(SHAPES[k], v["lr"], v["gamma"], v["offset"], 4, v["clip"],
                          v["momentum"], v["wd"], PER_LEAF_EPS[k], True)
        for k, v in PER_LEAF.items()
    }  # fmt: skip
    rng = np.random.default_rng(3)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    check_leaves_against_references(opt, refs, params, rng, rtol=1e-12, atol=1e-300)


def test_a_factored_leaf_takes_one_decay_and_other_leaves_take_arrays() -> None:
    """The decay of a factored leaf is shared by its rows and columns: one number, or refused
    naming the argument and the path; an unfactored leaf takes an array that broadcasts."""
    params = {"a": jnp.ones((6, 5)), "c": jnp.ones(5)}
    per_element = {"a": np.array([[0.8]]), "c": np.array([0.5, 0.6, 0.7, 0.8, 0.9])}
    factored_second_moment(decay_rate=per_element, min_dim_size_to_factor=4).init(params)
    for arg in ("decay_rate", "decay_offset"):
        wrong = {"a": np.full((6, 1), 1.0), "c": 1.0}
        with pytest.raises(ValueError, match=rf"^{arg}\['a'\] has shape \(6, 1\), but .* factored"):
            factored_second_moment(min_dim_size_to_factor=4, **{arg: unchecked(wrong)}).init(params)
    with pytest.raises(ValueError, match=r"^clipping_threshold\['c'\] has shape \(3,\)"):
        opt = adafactor(clipping_threshold={"a": 1.0, "c": np.ones(3)})
        opt.update(params, opt.init(params), params)


def _elements(tree: Any) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _bytes(tree: Any) -> int:
    return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def test_factored_state_is_rows_plus_cols() -> None:
    params = {"w": jax.ShapeDtypeStruct((1000, 1000), jnp.float32)}
    state = jax.eval_shape(adafactor(1e-3).init, params)
    # v_row (1000) + v_col (1000) + the (1,) placeholder of the full moment + the step count
    assert _elements(state) == 1000 + 1000 + 1 + 1
    assert _bytes(state) == 4 * 2002  # 0.008 bytes per parameter
    small = jax.eval_shape(
        factored_second_moment().init, {"w": jax.ShapeDtypeStruct((130, 140), jnp.float64)}
    )
    assert (small.v_row["w"].shape, small.v_col["w"].shape, small.v["w"].shape) == (
        (130,),
        (140,),
        (1,),
    )
    unfactored = jax.eval_shape(adafactor(1e-3, factored=False).init, params)
    assert _elements(unfactored) == 1000 * 1000 + 1 + 1 + 1


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"decay_rate": -0.5}, ValueError, "decay_rate"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"min_dim_size_to_factor": 2.5}, TypeError, "min_dim_size_to_factor"),
        ({"momentum": 1.5}, ValueError, "momentum"),
        ({"clipping_threshold": -1.0}, ValueError, "clipping_threshold"),
        ({"dtype_momentum": jnp.int32}, TypeError, "dtype_momentum"),
        ({"weight_decay_rate": -0.1}, ValueError, "weight_decay_rate"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate"),
        ({"decay_offset": None, "learning_rate": 1.0}, TypeError, "decay_offset"),
    ],
)
def test_errors_name_the_argument(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        adafactor(**kwargs)


def test_weight_decay_rate_errors_at_update_name_it() -> None:
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
    grads = jax.tree.map(jnp.ones_like, params)
    per_leaf = adafactor(1e-3, weight_decay_rate={"w": 0.1})  # "b" missing
    with pytest.raises(ValueError, match="weight_decay_rate"):
        per_leaf.update(grads, per_leaf.init(params), params)
    negative = adafactor(1e-3, weight_decay_rate=lambda count: jnp.where(count >= 0, -0.1, 0.0))
    with pytest.raises(ValueError, match="weight_decay_rate"):
        negative.update(grads, negative.init(params), params)


def test_vmap_over_hyperparameters_equals_loop() -> None:
    params = {"w": jnp.asarray(INITIAL["w"][:8, :6]), "b": jnp.asarray(INITIAL["b"][:6])}
    grads = jax.tree.map(lambda p: jnp.cos(3.0 * p), params)

    def run(lr: Any, decay: Any) -> Any:
        opt = adafactor(lr, min_dim_size_to_factor=4, decay_rate=decay, momentum=0.5)
        state = opt.init(params)
        updates, state = opt.update(grads, state, params)
        for _ in range(2):
            updates, state = opt.update(grads, state, params)
        return updates

    lrs, decays = jnp.asarray([0.01, 0.1, 0.3]), jnp.asarray([0.5, 0.8, 0.9])
    batched = _jit(jax.vmap(run))(lrs, decays)
    single_run = _jit(run)
    for i in range(3):
        single = single_run(lrs[i], decays[i])
        for k in params:
            np.testing.assert_allclose(batched[k][i], single[k], rtol=1e-6)
    assert float(jnp.max(jnp.abs(batched["w"][0] - batched["w"][2]))) > 0
