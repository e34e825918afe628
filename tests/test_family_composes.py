"""The newer Adam-family optimizers keep every promise the older aliases keep, one table for all.

Each case is an optimizer built from keyword arguments, with one decay-like hyperparameter
``arg`` and two valid values of it. On one small closed-loop problem (a few steps), each case:
takes hyperparameters as Python numbers, NumPy and JAX arrays, per-leaf trees and schedules;
compiles a jitted step once for every value; equals the Python loop under ``vmap``; composes
with ``skip_nonfinite``, ``accumulate_gradients`` and ``partition``; resumes from a checkpoint
bit for bit; keeps its state where the params are sharded; gives the tree's trajectory on flat
params; runs on float16 and bfloat16 params; and names the argument at fault.

Each check runs one or two cases in the default suite (a different one per check) and every
case with the slow set; the checks that need no steps run every case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import adamjax
from adamjax import flat
from tests.family_checks import fast_jit

LR_A, LR_B = 1e-2, 3e-2
START = {"w": np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]]), "b": np.array([0.1, -0.2])}
TARGET = {"w": np.full((3, 2), 0.3), "b": np.array([-0.5, 0.5])}
STEPS = 3


@dataclasses.dataclass(frozen=True)
class Case:
    """An optimizer ``build(**hyperparameters)`` and the hyperparameters the checks vary."""

    build: Callable[..., Any]
    arg: str  # a decay-like hyperparameter, given two valid values
    values: tuple[float, float]
    bad: float  # a value of ``arg`` out of its range
    blockwise: bool = False  # a rule over each whole leaf (flat needs a buffer per leaf)
    shared_rate: bool = False  # one learning rate for every leaf, no schedule (schedule-free)


def _alias(name: str, **fixed: Any) -> Callable[..., Any]:
    def build(**kwargs: Any) -> Any:
        return getattr(adamjax, name)(**{"learning_rate": LR_A, **fixed, **kwargs})

    return build


def _cautious(name: str) -> Callable[..., Any]:
    def build(**kwargs: Any) -> Any:
        return adamjax.cautious(_alias(name)(**kwargs))

    return build


CASES: dict[str, Case] = {
    "lamb": Case(_alias("lamb"), "b2", (0.99, 0.9), 1.5, blockwise=True),
    "adan": Case(_alias("adan"), "b3", (0.99, 0.9), 1.5),
    "ademamix": Case(_alias("ademamix"), "b3", (0.9999, 0.9), 1.5),
    "adopt": Case(_alias("adopt"), "b1", (0.9, 0.5), 1.5),
    "adafactor": Case(_alias("adafactor"), "decay_rate", (0.8, 0.5), -1.0, blockwise=True),
    "schedule_free_adamw": Case(
        _alias("schedule_free_adamw"), "b2", (0.999, 0.9), 1.5, shared_rate=True
    ),
    "stable_adamw": Case(_alias("stable_adamw"), "b2", (0.99, 0.9), 1.5, blockwise=True),
    "adam_mini": Case(_alias("adam_mini"), "b1", (0.9, 0.5), 1.5, blockwise=True),
    "adam_atan2": Case(_alias("adam_atan2"), "a", (1.27, 1.0), -1.0),
    "cautious-adamw": Case(_cautious("adamw"), "b2", (0.999, 0.9), 1.5, blockwise=True),
    "cautious-lion": Case(_cautious("lion"), "weight_decay", (1e-3, 0.5), -1.0, blockwise=True),
    "radam": Case(_alias("radam"), "b1", (0.9, 0.5), 1.5),
    "adabelief": Case(_alias("adabelief"), "b2", (0.999, 0.9), 1.5),
    "yogi": Case(_alias("yogi"), "eps", (1e-3, 1e-2), -1.0),
    "lion": Case(_alias("lion"), "weight_decay", (1e-3, 0.5), -1.0),  # the sign hides b1, b2
    "nadamw": Case(_alias("nadamw"), "b1", (0.9, 0.5), 1.5),
    "adamaxw": Case(_alias("adamaxw"), "b2", (0.999, 0.9), 1.5),
}


def _every_case() -> list[Any]:
    return list(CASES)


def _cases(*default: str) -> list[Any]:
    """Every case: ``default`` in the default suite, the others with the slow set (each check
    takes a second or more per case on a shared two-core machine)."""
    assert set(default) <= set(CASES)
    return [
        name if name in default else pytest.param(name, marks=pytest.mark.slow) for name in CASES
    ]


# ----- the problem ---------------------------------------------------------------------------


def _params(dtype: Any = jnp.float64) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v, dtype) for k, v in START.items()}


def _grads(step: int, params: Any) -> Any:
    """``params - target`` plus noise drawn for each step and leaf: a closed loop, the same for a
    leaf whatever else the tree holds."""

    def grad(key: str, p: jax.Array) -> jax.Array:
        noise = np.random.default_rng([step, ord(key)]).normal(size=TARGET[key].shape)
        return (p - jnp.asarray(TARGET[key] + 0.1 * noise, p.dtype)).astype(p.dtype)

    return {key: grad(key, p) for key, p in params.items()}


def _step(optimizer: Any, params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
    updates, state = optimizer.update(grads, state, params)
    return adamjax.apply_updates(params, updates), state


def _run(
    optimizer: Any,
    params: Any,
    state: Any = None,
    steps: range = range(STEPS),
    step: Callable[..., tuple[Any, Any]] | None = None,
) -> tuple:
    """``steps`` closed-loop steps from ``state`` (a fresh one by default), with ``step``
    (``(params, state, grads) -> (params, state)``; the optimizer's own by default)."""
    state = optimizer.init(params) if state is None else state
    for i in steps:
        grads = _grads(i, params)
        if step is None:
            params, state = _step(optimizer, params, state, grads)
        else:
            params, state = step(params, state, grads)
    return params, state


def _values(case: Case, which: int) -> dict[str, Any]:
    """The hyperparameters of member ``which`` (0 or 1) as Python numbers."""
    return {"learning_rate": (LR_A, LR_B)[which], case.arg: case.values[which]}


def _close(a: Any, b: Any, rtol: float = 1e-12) -> None:
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=1e-15)


def _bits_equal(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True
    ):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), jax.tree_util.keystr(path)


def _compiled(fn: Callable[[], Any]) -> Any:
    """``fn()`` as one compiled program: cheaper than running a new optimizer op by op, which
    compiles each operation on its first use."""
    return fast_jit(fn)()


def _moved(params: Any, start: Any) -> bool:
    return not np.allclose(np.asarray(params["w"], np.float64), np.asarray(start["w"], np.float64))


# ----- 1. numbers, arrays, per-leaf trees, schedules, tracers --------------------------------


@pytest.mark.parametrize("name", _cases("adafactor", "schedule_free_adamw"))
def test_per_leaf_trees_of_arrays_equal_each_leaf_run_with_its_own_numbers(name: str) -> None:
    """``{"w": NumPy arrays (member 0), "b": JAX arrays (member 1)}``: leaf ``w`` follows the run
    with member 0's Python numbers, leaf ``b`` the run with member 1's."""
    case = CASES[name]
    members = [_values(case, 0), _values(case, 1)]
    mixed: dict[str, Any] = {
        k: {"w": np.asarray(members[0][k]), "b": jnp.asarray(members[1][k])} for k in members[0]
    }
    if case.shared_rate:  # one learning rate for all leaves: a tree is refused, naming it
        with pytest.raises(ValueError, match=r"^learning_rate must be one value shared"):
            case.build(**mixed)
        mixed["learning_rate"] = members[1]["learning_rate"] = LR_A
    first, second, both = _compiled(
        lambda: [_run(case.build(**values), _params())[0] for values in (*members, mixed)]
    )
    _close(both["w"], first["w"])
    _close(both["b"], second["b"])
    assert not np.allclose(first["b"], second["b"])  # the members differ


@pytest.mark.parametrize("name", _cases("lion", "schedule_free_adamw"))
def test_a_constant_schedule_is_the_number(name: str) -> None:
    case = CASES[name]
    schedule = adamjax.schedules.constant(LR_A)
    if case.shared_rate:  # as optax's: a number (warmup_steps gives the warm-up)
        with pytest.raises(TypeError, match=r"^learning_rate must be a number"):
            case.build(learning_rate=schedule)
        return
    number, scheduled = _compiled(
        lambda: [
            _run(case.build(**{**_values(case, 0), "learning_rate": rate}), _params())[0]
            for rate in (LR_A, schedule)
        ]
    )
    _close(scheduled, number)


@pytest.mark.parametrize("name", _cases("adan"))
def test_new_values_do_not_recompile_and_tracers_equal_numbers(name: str) -> None:
    case = CASES[name]
    params = _params()

    @fast_jit
    @chex.assert_max_traces(n=1)
    def steps(lr: jax.Array, value: jax.Array) -> Any:
        return _run(case.build(learning_rate=lr, **{case.arg: value}), params)[0]

    numbers = _compiled(lambda: [_run(case.build(**_values(case, i)), params)[0] for i in (0, 1)])
    for which in (0, 1):
        traced = steps(*_values(case, which).values())
        _close(traced, numbers[which], rtol=1e-10)


@pytest.mark.parametrize("name", _cases("ademamix"))
def test_vmap_over_a_hyperparameter_equals_the_loop(name: str) -> None:
    case = CASES[name]
    params = _params()
    members = np.array([case.values[0], case.values[1], 0.5 * sum(case.values)])

    @fast_jit
    def ensemble(values: jax.Array) -> Any:
        return jax.vmap(lambda v: _run(case.build(**{case.arg: v}), params)[0])(values)

    batched = ensemble(members)
    looped = _compiled(
        lambda: [_run(case.build(**{case.arg: float(v)}), params)[0] for v in members]
    )
    for i, expected in enumerate(looped):
        _close(jax.tree.map(lambda x, i=i: x[i], batched), expected, rtol=1e-10)
    assert not np.array_equal(batched["w"][0], batched["w"][1])


# ----- 3. wrappers -------------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases("adam_mini"))
def test_a_nonfinite_step_changes_nothing_under_skip_nonfinite(name: str) -> None:
    inner = CASES[name].build()
    optimizer = adamjax.skip_nonfinite(inner)

    def steps() -> tuple:
        params, state = _run(optimizer, _params(), steps=range(1))
        poisoned = _grads(1, params)
        poisoned["b"] = poisoned["b"].at[0].set(jnp.nan)
        after = _step(optimizer, params, state, poisoned)
        return params, state, after, _run(inner, _params(), steps=range(1))

    params, state, (after, skipped), alone = _compiled(steps)
    _bits_equal(params, alone[0])
    _bits_equal(state.inner_state, alone[1])
    _bits_equal(after, params)
    _bits_equal(skipped.inner_state, state.inner_state)
    assert int(skipped.total_skips) == 1


@pytest.mark.parametrize("name", _cases("radam"))
def test_accumulated_micro_steps_equal_one_step_on_the_mean(name: str) -> None:
    case = CASES[name]
    micro = [_grads(10 + i, _params()) for i in range(2)]
    optimizer = adamjax.accumulate_gradients(case.build(), 2)

    def steps() -> tuple:
        params, state = _params(), optimizer.init(_params())
        for grads in micro:
            params, state = _step(optimizer, params, state, grads)
        mean = jax.tree.map(lambda a, b: (a + b) / 2, *micro)
        return params, _step(case.build(), _params(), case.build().init(_params()), mean)[0]

    params, expected = _compiled(steps)
    _close(params, expected)
    assert name == "adopt" or _moved(params, _params())  # ADOPT's first step is zero


@pytest.mark.parametrize("name", _cases("stable_adamw"))
def test_partition_routes_a_leaf_to_another_transform(name: str) -> None:
    case = CASES[name]
    optimizer = adamjax.partition(
        {"family": case.build(), "sgd": adamjax.sgd(0.1)}, {"w": "family", "b": "sgd"}
    )
    params, only_w, only_b = _compiled(
        lambda: [
            _run(optimizer, _params())[0],
            _run(case.build(), {"w": _params()["w"]})[0],
            _run(adamjax.sgd(0.1), {"b": _params()["b"]})[0],
        ]
    )
    _close(params["w"], only_w["w"])
    _close(params["b"], only_b["b"])


# ----- 4. checkpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases("adopt"))
def test_resumed_from_a_checkpoint_the_trajectory_is_bitwise_the_same(
    name: str, tmp_path: Path
) -> None:
    optimizer = CASES[name].build()
    step = fast_jit(lambda p, s, g: _step(optimizer, p, s, g))  # one program, as in training
    straight = _run(optimizer, _params(), steps=range(4), step=step)
    halfway = _run(optimizer, _params(), steps=range(2), step=step)
    file = tmp_path / "state.npz"
    adamjax.save_checkpoint(file, {"params": halfway[0], "opt_state": halfway[1]})
    target = jax.eval_shape(lambda: {"params": _params(), "opt_state": optimizer.init(_params())})
    restored = adamjax.restore_checkpoint(file, target)
    resumed = _run(optimizer, restored["params"], restored["opt_state"], range(2, 4), step=step)
    _bits_equal(resumed, straight)
    assert _moved(straight[0], _params())


# ----- 5. sharding -------------------------------------------------------------------------


def _sharded_params() -> tuple[dict[str, jax.Array], dict[str, NamedSharding]]:
    mesh = jax.make_mesh((4, 2), ("data", "model"))
    shardings = {"w": NamedSharding(mesh, P("data", "model")), "b": NamedSharding(mesh, P())}
    rng = np.random.default_rng(0)
    values = {"w": rng.normal(size=(8, 4)), "b": rng.normal(size=(4,))}
    return jax.device_put(values, shardings), shardings


def _placement_errors(state: Any, params: Any, shardings: dict[str, Any]) -> list[str]:
    """State leaves with a param's shape must have its sharding; every leaf is on the mesh."""
    errors = []
    shapes = {jnp.shape(p): k for k, p in params.items()}
    everywhere = set(jax.devices())
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        where = jax.tree_util.keystr(path)
        key = str(getattr(path[-1], "key", ""))
        if key in shardings and leaf.shape == params[key].shape:
            if not leaf.sharding.is_equivalent_to(shardings[key], leaf.ndim):
                errors.append(f"{where}: {leaf.sharding}")
        elif leaf.shape in shapes and key not in shardings:
            errors.append(f"{where}: a param-shaped leaf without a param's key")
        if leaf.sharding.device_set != everywhere:
            errors.append(f"{where}: on {len(leaf.sharding.device_set)} devices")
    return errors


@pytest.mark.parametrize("name", _every_case())
def test_eager_init_places_the_state_with_the_params(name: str) -> None:
    params, shardings = _sharded_params()
    state = CASES[name].build().init(params)
    assert _placement_errors(state, params, shardings) == []


@pytest.mark.parametrize("name", _cases("lamb"))
def test_a_jitted_step_keeps_the_placement(name: str) -> None:
    optimizer = CASES[name].build()
    params, shardings = _sharded_params()
    state = jax.jit(optimizer.init, out_shardings=adamjax.state_shardings(optimizer, params))(
        params
    )
    assert _placement_errors(state, params, shardings) == []
    step = fast_jit(lambda p, s, g: _step(optimizer, p, s, g))
    for _ in range(2):
        params, state = step(params, state, jax.tree.map(lambda p: 0.1 * p + 0.01, params))
    assert _placement_errors(state, params, shardings) == []
    assert _placement_errors(params, params, shardings) == []


# ----- 6. flat params ------------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases("cautious-lion", "adam_atan2"))
def test_flat_params_follow_the_tree_trajectory(name: str) -> None:
    """Whole-leaf rules see a buffer as one leaf: they get one buffer per leaf (``groups``)."""
    case = CASES[name]
    groups = {"w": "w", "b": "b"} if case.blockwise else None
    packed = flat.ravel(_params(), groups=groups)
    optimizer = case.build()

    def runs() -> tuple:
        params, state = packed, optimizer.init(packed)
        for i in range(STEPS):
            grads = packed.layout.ravel(_grads(i, params.unravel()))
            params, state = _step(optimizer, params, state, grads)
        return params.unravel(), _run(case.build(), _params())[0]

    unravelled, tree = _compiled(runs)
    _close(unravelled, tree)


# ----- 7. float16 and bfloat16 params ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", _cases("adabelief"))
def test_low_precision_params_are_finite_moving_and_stored_as_documented(name, dtype) -> None:
    """Updates in the params' dtype; every floating state leaf in it or in float32 (a second
    moment of float16 params, an accumulation dtype), never wider."""
    optimizer = CASES[name].build()
    start = _params(dtype)

    def steps() -> tuple:
        params, state, every = start, optimizer.init(start), []
        for i in range(STEPS):
            updates, state = optimizer.update(_grads(i, params), state, params)
            params = adamjax.apply_updates(params, updates)
            every.append(updates)
        return params, state, every

    params, state, every = _compiled(steps)
    assert {u.dtype for u in jax.tree.leaves(every)} == {jnp.dtype(dtype)}
    assert bool(adamjax.all_finite((params, state)))
    assert _moved(params, start)
    floats = {
        leaf.dtype for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)
    }
    assert floats <= {jnp.dtype(dtype), jnp.dtype(jnp.float32)}, floats


# ----- 8. errors name the argument ------------------------------------------------------------


@pytest.mark.parametrize("name", _every_case())
def test_an_out_of_range_value_is_refused_naming_the_argument(name: str) -> None:
    case = CASES[name]
    with pytest.raises(ValueError, match=rf"^{case.arg} must be"):
        case.build(**{case.arg: case.bad})
    with pytest.raises(ValueError, match=rf"^{case.arg}\['b'\] must be"):
        case.build(**{case.arg: {"w": case.values[0], "b": case.bad}})
    with pytest.raises(ValueError, match=rf"^{case.arg}\['w'\] has shape \(4,\)"):
        wrong = {"w": jnp.full(4, case.values[0]), "b": case.values[1]}
        jax.eval_shape(lambda: _run(case.build(**{case.arg: wrong}), _params()))  # traced only
