"""compensated(): bfloat16 and float16 params that keep the updates rounding would drop.

The expected values come from a float64 NumPy model of the rounding rule written here: rounding
to a given number of significant bits, to nearest with ties to even, applied at each place the
rule rounds (float32 sums, the params' dtype).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from tests import reference as ref

# significant bits, and the exponent (np.frexp's convention) of the smallest normal number
FORMATS = {"bfloat16": (8, -125), "float16": (11, -13), "float32": (24, -125)}
LOW = {"bfloat16": jnp.bfloat16, "float16": jnp.float16}


def round_to(x: Any, name: str) -> np.ndarray:
    """``x`` (float64) rounded to the format ``name``: to nearest, ties to even."""
    bits, min_exponent = FORMATS[name]
    x = np.asarray(x, np.float64)
    _, exponent = np.frexp(x)
    quantum = np.ldexp(1.0, np.maximum(exponent, min_exponent) - bits)
    return np.round(x / quantum) * quantum  # exact scalings by powers of two; np.round: to even


def ulp(x: np.ndarray, name: str) -> np.ndarray:
    """The spacing of the format ``name`` just above ``|x|``."""
    bits, min_exponent = FORMATS[name]
    _, exponent = np.frexp(np.abs(x))
    return np.ldexp(1.0, np.maximum(exponent, min_exponent) - bits)


def reference_step(p: np.ndarray, u: np.ndarray, c: np.ndarray, low: str) -> tuple[np.ndarray, ...]:
    """One step of the rule in float64 with explicit roundings: (update, new param, new c)."""
    s = round_to(p + round_to(u + c, "float32"), "float32")  # s = p + (u + c), in float32
    nearest = round_to(s, low)
    update = round_to(round_to(nearest - p, "float32"), low)
    applied = round_to(round_to(p + update, "float32"), low)  # what apply_updates does
    return update, applied, round_to(round_to(s - applied, "float32"), low)


def bits(x: Any) -> np.ndarray:
    return np.asarray(jnp.asarray(x).astype(jnp.float64))


def train_step(optimizer: Any) -> Any:
    """``(grads, state, params) -> (params, state)``, one jitted step."""

    @jax.jit
    def step(grads: Any, state: Any, params: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return step


START = np.array([1.0, -3.0, 0.3, 100.0, 1e-3])


def _small_updates(kind: str, low: str, steps: int) -> list[np.ndarray]:
    """Updates below half a unit in the last place of the start values, as float32 numbers."""
    half = ulp(START, low) / 4  # a quarter unit: below the half unit on either side
    if kind == "constant":
        return [round_to(0.3 * half, "float32")] * steps
    rng = np.random.default_rng(1)
    return [round_to(rng.uniform(-0.2, 0.9, START.shape) * half, "float32") for _ in range(steps)]


@pytest.mark.parametrize("kind", ["constant", "random"])
@pytest.mark.parametrize("low", list(LOW))
def test_each_step_is_the_rounding_rule_and_small_updates_add_up(kind: str, low: str) -> None:
    """Plain low precision never moves; compensated follows the rule bit for bit and ends
    within one unit in the last place of start + sum of the updates."""
    steps = 60
    dtype = LOW[low]
    updates = _small_updates(kind, low, steps)
    optimizer = adamjax.compensated(adamjax.scale(1.0))  # hands the "gradients" on as updates
    params = {"w": jnp.asarray(START).astype(dtype)}
    plain = params["w"]
    state = optimizer.init(params)
    p, c = round_to(START, low), np.zeros_like(START)
    step, apply = jax.jit(optimizer.update), jax.jit(adamjax.apply_updates)
    for u in updates:
        grads = {"w": jnp.asarray(u, jnp.float32)}
        out, state = step(grads, state, params)
        params = apply(params, out)
        plain = apply({"w": plain}, grads)["w"]
        expected_update, p, c = reference_step(p, u, c, low)
        assert out["w"].dtype == dtype and state.compensation["w"].dtype == dtype
        np.testing.assert_array_equal(bits(out["w"]), expected_update)
        np.testing.assert_array_equal(bits(params["w"]), p)
        np.testing.assert_array_equal(bits(state.compensation["w"]), c)
    np.testing.assert_array_equal(bits(plain), round_to(START, low))  # never moved
    exact = round_to(START, low) + np.sum(updates, axis=0)
    assert np.all(np.abs(p - exact) <= ulp(exact, low))
    assert np.all(p != round_to(START, low))


def _gradient_sequence(steps: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=shape) + 0.3 for _ in range(steps)]


def test_compensated_adam_tracks_float64_adam_where_plain_low_precision_stalls() -> None:
    """Adam's steps (1e-3) are below half a unit at |theta| >= 0.5 in bfloat16: plain bfloat16
    Adam drifts far off; compensated stays within a unit plus the steps' own rounding."""
    low = "bfloat16"
    dtype, lr, shape = LOW[low], 1e-3, (4, 8)
    start = np.random.default_rng(2).uniform(0.5, 2.0, shape)
    start = round_to(start, low)
    reference = ref.Adam(start, lr=lr)
    optimizer = adamjax.compensated(adamjax.adam(lr))
    plain_optimizer = adamjax.adam(lr)
    params = plain = jnp.asarray(start).astype(dtype)
    state, plain_state = optimizer.init(params), plain_optimizer.init(plain)
    expected, travelled = start, np.zeros(shape)
    step, plain_step = train_step(optimizer), train_step(plain_optimizer)
    for g in _gradient_sequence(120, shape):
        grads = jnp.asarray(g).astype(dtype)
        moved = reference.step(expected, bits(grads))
        travelled += np.abs(moved - expected)
        expected = moved
        params, state = step(grads, state, params)
        plain, plain_state = plain_step(grads, plain_state, plain)
    # each returned step carries the update rounded to the params' dtype: 2**-(bits-1) of it
    allowed = ulp(expected, low) + 2.0 ** (1 - FORMATS[low][0]) * travelled
    assert np.all(np.abs(bits(params) - expected) <= allowed)
    assert np.max(np.abs(bits(plain) - expected)) > 4 * np.max(allowed)


def test_float32_and_wider_params_get_the_inner_updates_bit_for_bit() -> None:
    params = {
        "f32": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32),
        "f64": jnp.linspace(-2.0, 2.0, 3, dtype=jnp.float64),
        "c64": jnp.ones(2, jnp.complex64),
        "bf16": jnp.ones(3, jnp.bfloat16),
    }
    optimizer, inner = adamjax.compensated(adamjax.adam(0.01)), adamjax.adam(0.01)
    state, inner_state = optimizer.init(params), inner.init(params)
    assert state.compensation["f32"] is None and state.compensation["c64"] is None
    assert state.compensation["bf16"].dtype == jnp.bfloat16
    rng = np.random.default_rng(3)

    @jax.jit
    def both(grads: Any, state: Any, inner_state: Any, params: Any) -> tuple[Any, ...]:
        updates, state = optimizer.update(grads, state, params)
        expected, inner_state = inner.update(grads, inner_state, params)
        return updates, state, expected, inner_state

    for _ in range(3):
        grads = jax.tree.map(
            lambda p: jnp.asarray(rng.normal(size=p.shape)).astype(p.dtype), params
        )
        updates, state, expected, inner_state = both(grads, state, inner_state, params)
        for name in ("f32", "f64", "c64"):
            assert updates[name].dtype == expected[name].dtype
            np.testing.assert_array_equal(np.asarray(updates[name]), np.asarray(expected[name]))
        same = jax.tree.map(np.array_equal, state.inner_state, inner_state)
        assert all(jax.tree.leaves(same))
        params = adamjax.apply_updates(params, updates)


@pytest.mark.slow
def test_jit_and_vmap_give_the_loop_bit_for_bit() -> None:
    """The eager loop of one member, the jitted loop of each, and all of them under vmap."""
    optimizer = adamjax.compensated(adamjax.adam(3e-3))
    rng = np.random.default_rng(4)
    members = jnp.asarray(rng.uniform(0.5, 4.0, (3, 7))).astype(jnp.bfloat16)
    grads = [jnp.asarray(rng.normal(size=(3, 7))).astype(jnp.bfloat16) for _ in range(6)]
    step, batched_step = (
        train_step(optimizer),
        train_step(
            adamjax.GradientTransformation(jax.vmap(optimizer.init), jax.vmap(optimizer.update))
        ),
    )
    eager_params, eager_state = members[0], optimizer.init(members[0])
    for g in grads[:3]:  # eager steps are slow: three of them
        updates, eager_state = optimizer.update(g[0], eager_state, eager_params)
        eager_params = adamjax.apply_updates(eager_params, updates)
    loops, after_three = [], []
    for i in range(3):
        params, state = members[i], optimizer.init(members[i])
        for t, g in enumerate(grads):
            params, state = step(g[i], state, params)
            if t == 2:
                after_three.append((params, state))
        loops.append((params, state))
    params, state = members, jax.vmap(optimizer.init)(members)
    for g in grads:
        params, state = batched_step(g, state, params)
    jitted_params, jitted_state = after_three[0]
    np.testing.assert_array_equal(bits(jitted_params), bits(eager_params))
    np.testing.assert_array_equal(bits(jitted_state.compensation), bits(eager_state.compensation))
    for i in range(3):
        np.testing.assert_array_equal(bits(params[i]), bits(loops[i][0]))
        np.testing.assert_array_equal(bits(state.compensation[i]), bits(loops[i][1].compensation))
    assert np.any(bits(state.compensation) != 0)  # the buffers are in use


def test_buffers_follow_the_params_sharding() -> None:
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    params = {"w": jax.device_put(jnp.ones(16, jnp.bfloat16), sharding)}
    optimizer = adamjax.compensated(adamjax.adam(1e-3))
    state = optimizer.init(params)
    assert state.compensation["w"].sharding == sharding
    grads = {"w": jax.device_put(jnp.full(16, 0.5, jnp.bfloat16), sharding)}
    updates, state = jax.jit(optimizer.update)(grads, state, params)
    assert state.compensation["w"].sharding.is_equivalent_to(sharding, 1)
    assert updates["w"].sharding.is_equivalent_to(sharding, 1)


def test_errors_name_the_argument_or_the_path() -> None:
    optimizer = adamjax.compensated(adamjax.adam(1e-3))
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    state = optimizer.init(params)
    grads = {"w": jnp.ones(3, jnp.bfloat16)}
    with pytest.raises(ValueError, match=r"compensated\(\) needs the params"):
        optimizer.update(grads, state)
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32"):
        optimizer.init({"w": params["w"], "n": jnp.zeros(2, jnp.int32)})
    with pytest.raises(TypeError, match=r"params\['n'\] has dtype int32"):
        optimizer.update(
            {"w": grads["w"], "n": jnp.zeros(2)},
            state,
            {"w": params["w"], "n": jnp.zeros(2, jnp.int32)},
        )
    wider = {"w": jnp.ones(3, jnp.float32)}
    with pytest.raises(
        ValueError, match=r"params\['w'\] has dtype float32, but state\.compensation"
    ):
        optimizer.update(grads, state, wider)
    with pytest.raises(
        ValueError, match=r"params\['w'\] has dtype bfloat16, but state\.compensation"
    ):
        optimizer.update(grads, optimizer.init(wider), params)
    with pytest.raises(ValueError, match=r"grads\['v'\] is not in params"):
        optimizer.update({**grads, "v": jnp.ones(1)}, state, params)
    with pytest.raises(TypeError, match=r"compensated\(\) inner must have init and update"):
        adamjax.compensated(1e-3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"compensated\(\) takes the CompensatedState"):
        optimizer.update(grads, state.inner_state, params)


def test_checkpoint_round_trip_continues_bit_for_bit(tmp_path: Path) -> None:
    optimizer = adamjax.compensated(adamjax.adam(2e-3))
    params = {"w": jnp.linspace(0.5, 3.0, 9).astype(jnp.bfloat16), "b": jnp.zeros(2)}
    rng = np.random.default_rng(5)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)).astype(p.dtype), params)
        for _ in range(6)
    ]
    step = train_step(optimizer)
    state = optimizer.init(params)
    for g in grads[:3]:
        params, state = step(g, state, params)
    file = tmp_path / "compensated.npz"
    adamjax.save_checkpoint(file, {"params": params, "state": state})
    restored = adamjax.restore_checkpoint(
        file, jax.eval_shape(lambda: {"params": params, "state": state})
    )
    assert isinstance(restored["state"], adamjax.CompensatedState)
    assert restored["state"].compensation["b"] is None
    runs = []
    for p, s in ((params, state), (restored["params"], restored["state"])):
        for g in grads[3:]:
            p, s = step(g, s, p)
        runs.append((p, s))
    assert jax.tree.structure(runs[0]) == jax.tree.structure(runs[1])
    for a, b in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1]), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(bits(a), bits(b))


@pytest.mark.slow
def test_an_optax_inner_is_compensated_too(standard_promotion: None) -> None:
    """optax.adam on bfloat16 params: compensated ends near float32 optax.adam, plain does not."""
    start = np.random.default_rng(6).uniform(0.5, 2.0, (16,))
    grads = _gradient_sequence(100, (16,))
    runs = {}
    for name, optimizer, dtype in (
        ("float32", optax.adam(1e-3), jnp.float32),
        ("plain", optax.adam(1e-3), jnp.bfloat16),
        ("compensated", adamjax.compensated(optax.adam(1e-3)), jnp.bfloat16),
    ):
        params = jnp.asarray(start).astype(dtype)
        state, step = optimizer.init(params), train_step(optimizer)
        for g in grads:
            params, state = step(jnp.asarray(g).astype(dtype), state, params)
        runs[name] = bits(params)
    gap_plain = np.max(np.abs(runs["plain"] - runs["float32"]))
    gap_compensated = np.max(np.abs(runs["compensated"] - runs["float32"]))
    assert gap_compensated < 2 * np.max(ulp(runs["float32"], "bfloat16"))
    assert gap_compensated < gap_plain / 4
