"""schedule_free and schedule_free_adamw against optax.contrib and a float64 NumPy reference."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adamjax import (
    apply_updates,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval_params,
    sgd,
)
from tests.family_checks import check_leaves_against_references
from tests.typed import unchecked

STEPS = 100
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(16, 3))
Y = np.sin(X @ np.array([1.0, -2.0, 0.5]))
INITIAL = {"w1": _RNG.normal(size=(3, 5)), "w2": _RNG.normal(size=(5,))}


def _loss(params: dict) -> jax.Array:
    hidden = jnp.tanh(jnp.asarray(X) @ params["w1"])
    return jnp.mean((hidden @ params["w2"] - jnp.asarray(Y)) ** 2)


def _flat(params: dict) -> Any:
    return jnp.concatenate([params["w1"].ravel(), params["w2"]])


def _trajectories(optimizers: list[Any], apply: Callable, evaluate: Callable) -> list[np.ndarray]:
    """For each optimizer, the flattened params and eval params after each step (one program)."""

    def path(opt: Any, start: dict) -> jax.Array:
        def body(carry: tuple, _: Any) -> tuple:
            params, state = carry
            updates, state = opt.update(jax.grad(_loss)(params), state, params)
            params = apply(params, updates)
            return (params, state), jnp.concatenate([_flat(params), _flat(evaluate(state, params))])

        return jax.lax.scan(body, (start, opt.init(start)), None, STEPS)[1]

    start = {k: jnp.asarray(v) for k, v in INITIAL.items()}
    return [np.asarray(x) for x in _jit(lambda p: [path(o, p) for o in optimizers])(start)]


def _warm(count: Any) -> jax.Array:
    return 0.05 * jnp.minimum(1.0, jnp.asarray(count).astype(jnp.float64) / 10.0)


CASES: dict[str, Callable[[Any, Any, Any], Any]] = {
    "adamw-defaults": lambda adamw, wrap, sgd_: adamw(),
    "adamw-options": lambda adamw, wrap, sgd_: adamw(0.05, None, 0.8, 0.99, 1e-6, 0.01, 1.5),
    "sgd-warmup-schedule": lambda adamw, wrap, sgd_: wrap(sgd_(_warm), _warm, b1=0.95),
}


@functools.cache
def _all_trajectories() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ours = _trajectories(
        [c(schedule_free_adamw, schedule_free, sgd) for c in CASES.values()],
        apply_updates,
        schedule_free_eval_params,
    )
    with jax.numpy_dtype_promotion("standard"):
        contrib = optax.contrib
        built = [
            c(contrib.schedule_free_adamw, contrib.schedule_free, optax.sgd) for c in CASES.values()
        ]
        theirs = _trajectories(built, optax.apply_updates, contrib.schedule_free_eval_params)
    return dict(zip(CASES, zip(ours, theirs, strict=True), strict=True))


@pytest.mark.parametrize("case", CASES)
def test_matches_optax_over_100_steps(case: str) -> None:
    ours, theirs = _all_trajectories()[case]
    start = np.concatenate([INITIAL["w1"].ravel(), INITIAL["w2"]])
    start = np.concatenate([start, start])
    gap = float(np.max(np.abs(ours - theirs)))
    moved = float(np.max(np.abs(theirs[-1] - start)))
    assert moved > 0.1, case
    assert gap <= 1e-10 * moved, (case, gap, moved)


def test_warmup_matches_optax_up_to_its_float32_schedule() -> None:
    # optax's warmup_constant_schedule computes in float32; adamjax's in float64
    opts = [schedule_free_adamw(0.05, warmup_steps=10)]
    ours = _trajectories(opts, apply_updates, schedule_free_eval_params)[0]
    with jax.numpy_dtype_promotion("standard"):
        theirs_opt = [optax.contrib.schedule_free_adamw(0.05, warmup_steps=10)]
        theirs = _trajectories(
            theirs_opt, optax.apply_updates, optax.contrib.schedule_free_eval_params
        )[0]
    start = np.tile(np.concatenate([INITIAL["w1"].ravel(), INITIAL["w2"]]), 2)
    assert float(np.max(np.abs(ours - theirs))) <= 1e-6 * float(np.max(np.abs(theirs[-1] - start)))


class NumpyScheduleFreeAdamW:
    """Defazio et al. 2024, Algorithm 1 (AdamW) as optax runs it, one array."""

    def __init__(self, p, lr, b1, b2, eps, wd, power, warmup=0):
        self.lr, self.b1, self.b2, self.eps, self.wd, self.power = lr, b1, b2, eps, wd, power
        self.warmup, self.z, self.v = warmup, p.copy(), np.zeros_like(p)
        self.k, self.max_lr, self.weight_sum = 0, 0.0, 0.0

    def _rate(self, k: int) -> float:
        return self.lr * min(k, self.warmup) / self.warmup if self.warmup else self.lr

    def delta(self, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.max_lr = max(self.max_lr, self._rate(self.k + 1))
        weight = self.max_lr**self.power
        self.weight_sum += weight
        ck = weight / self.weight_sum if self.weight_sum > 0 else 0.0
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        v_hat = self.v / (1 - self.b2 ** (self.k + 1))
        z_new = self.z - self._rate(self.k) * (g / (np.sqrt(v_hat) + self.eps) + self.wd * y)
        x = (y - (1 - self.b1) * self.z) / self.b1
        x = (1 - ck) * x + ck * z_new
        self.z, self.k = z_new, self.k + 1
        return self.b1 * x + (1 - self.b1) * z_new - y


def test_matches_numpy_reference_step_by_step() -> None:
    shapes = {"a": (3, 4), "b": (5,)}
    rng = np.random.default_rng(2)
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    opt = schedule_free_adamw(0.1, 3, 0.85, 0.95, 1e-6, 0.02, 1.5)
    refs = {
        k: NumpyScheduleFreeAdamW(params[k], 0.1, 0.85, 0.95, 1e-6, 0.02, 1.5, 3) for k in shapes
    }
    state = opt.init(jax.tree.map(jnp.asarray, params))
    step = _jit(opt.update)
    for t in range(10):
        grads = {k: rng.normal(size=s) * 10.0 ** rng.uniform(-3, 2) for k, s in shapes.items()}
        updates, state = step(
            jax.tree.map(jnp.asarray, grads), state, jax.tree.map(jnp.asarray, params)
        )
        for k in shapes:
            expected = refs[k].delta(params[k], grads[k])
            np.testing.assert_allclose(
                np.asarray(updates[k]), expected, rtol=1e-10, atol=1e-14, err_msg=f"{k} {t}"
            )
            params[k] = params[k] + expected
            x = (params[k] - (1 - 0.85) * refs[k].z) / 0.85
            # the params' own structure: a dict of arrays
            evaluated = cast(
                dict[str, jax.Array],
                schedule_free_eval_params(state, jax.tree.map(jnp.asarray, params)),
            )
            np.testing.assert_allclose(np.asarray(evaluated[k]), x, rtol=1e-10, atol=1e-14)


@pytest.mark.slow
def test_per_leaf_b2_eps_and_weight_decay_match_the_reference_leaf_by_leaf() -> None:
    shapes = {"a": (3, 4), "b": (5,)}
    own: dict[str, tuple[Any, float, float]] = {
        "a": (0.95, 1e-6, 0.02),
        "b": (np.array([0.5, 0.9, 0.99, 0.999, 0.0]), 1e-3, 0.0),
    }
    rng = np.random.default_rng(4)
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    b2, eps, wd = ({k: jnp.asarray(v[i]) for k, v in own.items()} for i in range(3))
    opt = schedule_free_adamw(0.1, 3, 0.85, b2, eps, wd, 1.5)
    refs = {k: NumpyScheduleFreeAdamW(params[k], 0.1, 0.85, *own[k], 1.5, 3) for k in shapes}
    check_leaves_against_references(opt, refs, params, rng, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("arg", ["learning_rate", "b1", "weight_lr_power"])
def test_arguments_every_leaf_shares_refuse_a_per_leaf_tree(arg: str) -> None:
    """One averaging weight and one b1 serve the whole tree (scalars in the state, as optax's)."""
    with pytest.raises(ValueError, match=rf"^{arg} must be one value shared by every leaf"):
        schedule_free_adamw(**{arg: unchecked({"a": 0.5, "b": 0.5})})
    with pytest.raises(ValueError, match=rf"^{arg} must be one value shared by every leaf"):
        schedule_free(sgd(0.1), **{"learning_rate": 0.1, arg: {"a": 0.5, "b": 0.5}})


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"b1": 0.0}, ValueError, "b1"),
        ({"b1": 1.5}, ValueError, "b1"),
        ({"b2": 1.0}, ValueError, "b2"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"weight_lr_power": -1.0}, ValueError, "weight_lr_power"),
        ({"warmup_steps": 2.5}, TypeError, "warmup_steps"),
        ({"state_dtype": jnp.int32}, TypeError, "state_dtype"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
    ],
)
def test_errors_name_the_argument(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        schedule_free_adamw(**kwargs)


def test_eval_params_refuses_other_states() -> None:
    with pytest.raises(TypeError, match="ScheduleFreeState"):
        schedule_free_eval_params((), {"w": jnp.zeros(2)})


def test_vmap_over_hyperparameters_equals_loop() -> None:
    params = {k: jnp.asarray(v) for k, v in INITIAL.items()}

    def run(lr: Any, b1: Any) -> Any:
        opt = schedule_free_adamw(lr, b1=b1, weight_decay=0.01)
        state, p = opt.init(params), params
        for _ in range(3):
            updates, state = opt.update(jax.grad(_loss)(p), state, p)
            p = apply_updates(p, updates)
        return p

    lrs, b1s = jnp.asarray([0.01, 0.05, 0.2]), jnp.asarray([0.5, 0.9, 0.95])
    batched = _jit(jax.vmap(run))(lrs, b1s)
    single_run = _jit(run)
    for i in range(3):
        single = single_run(lrs[i], b1s[i])
        for k in params:
            np.testing.assert_allclose(batched[k][i], single[k], rtol=1e-12)
    assert float(jnp.max(jnp.abs(batched["w1"][0] - batched["w1"][2]))) > 0
