"""Ensembles under jit(vmap(step)): members equal their lone runs, per-member hyperparameters,
no recompilation, isolation of non-finite members, and the errors of adamjax.ensemble."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from adamjax import ensemble
from tests import reference as ref

N = 4
STEPS = 25
X = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)))
Y = jnp.asarray((np.random.default_rng(1).normal(size=16) > 0).astype(np.float64))


def seeded_mlp(seed: int) -> dict[str, jax.Array]:
    """A member initialised from its own seed (NumPy, so no PRNG kernels to compile)."""
    rng = np.random.default_rng(seed)
    return {
        "w1": jnp.asarray(rng.normal(size=(2, 4))),
        "b1": jnp.zeros(4, jnp.float64),
        "w2": jnp.asarray(rng.normal(size=(4, 1))),
        "b2": jnp.zeros(1, jnp.float64),
    }


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    z = (hidden @ params["w2"] + params["b2"][None, :])[:, 0]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def train_step(params: Any, opt_state: Any, hp: dict[str, Any], x: jax.Array, y: jax.Array):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = adamjax.adamw(**hp).update(grads, opt_state, params)
    return adamjax.apply_updates(params, updates), opt_state, loss


HP = dict(
    learning_rate=np.array([0.05, 0.01, 0.002, 0.1]),
    b1=np.array([0.9, 0.5, 0.0, 0.95]),
    b2=np.array([0.999, 0.9, 0.99, 0.5]),
    eps=np.array([1e-8, 1e-3, 1e-6, 0.1]),
    weight_decay=np.array([1e-4, 0.0, 0.1, 0.01]),
)
REF_NAMES = dict(learning_rate="lr", b1="b1", b2="b2", eps="eps", weight_decay="weight_decay")


def test_vmapped_ensemble_equals_each_member_alone_step_by_step() -> None:
    params = ensemble.stack([seeded_mlp(i) for i in range(N)])
    hp = ensemble.hyperparameters(adamjax.adamw, N, **HP)
    state = ensemble.init(adamjax.adamw, params, hp)
    vmapped = jax.jit(jax.vmap(train_step, in_axes=(0, 0, 0, None, None)))

    alone_step = jax.jit(train_step)
    alone = []
    for i in range(N):
        member_hp = {k: v[i] for k, v in hp.items()}
        p = seeded_mlp(i)
        alone.append([p, adamjax.adamw(**member_hp).init(p), member_hp])

    for step in range(STEPS):
        params, state, losses = vmapped(params, state, hp, X, Y)
        batched = jax.device_get((params, state, losses))
        for i, (p, s, member_hp) in enumerate(alone):
            p, s, loss = alone_step(p, s, member_hp, X, Y)
            alone[i][:2] = [p, s]
            member = jax.tree.map(lambda leaf, i=i: leaf[i], batched)
            where = f"step {step + 1}, member {i}"
            chex.assert_trees_all_close(
                member, (p, s, loss), rtol=1e-12, atol=1e-14, custom_message=where
            )
    # the members really differ, so the comparison above is not vacuous
    w1 = np.asarray(params["w1"])
    assert min(np.abs(w1[i] - w1[j]).max() for i in range(N) for j in range(i)) > 1e-2


def _open_loop_grads(seed: int, steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """Batched gradients (leading axis N) whose size varies from step to step."""
    rng = np.random.default_rng(seed)
    return [
        {
            "w": np.exp(rng.normal()) * rng.normal(size=(N, 3, 2)) + 0.2,
            "b": np.exp(rng.normal()) * rng.normal(size=(N, 2)) - 0.1,
        }
        for _ in range(steps)
    ]


def _reference_member(i: int, params: dict, grads: list[dict], **hp: Any) -> list[dict]:
    """ref.AdamW on member i; a hyperparameter may be a per-leaf dict."""
    out: list[dict] = [{} for _ in grads]
    for key in params:
        leaf_hp = {
            REF_NAMES[name]: float(np.broadcast_to(v[key] if isinstance(v, dict) else v, N)[i])
            for name, v in hp.items()
        }
        history = ref.run(ref.AdamW, params[key][i], [g[key][i] for g in grads], **leaf_hp)
        for step_dict, value in zip(out, history, strict=True):
            step_dict[key] = value
    return out


def test_per_member_hyperparameters_match_reference_without_recompiling() -> None:
    @chex.assert_max_traces(n=1)  # new values, same shapes: one trace for both runs
    def step(params, state, hp, grads):
        updates, state = adamjax.adamw(**hp).update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    vmapped = jax.jit(jax.vmap(step))
    start = {
        "w": np.random.default_rng(2).normal(size=(N, 3, 2)),
        "b": np.random.default_rng(3).normal(size=(N, 2)),
    }
    grads = _open_loop_grads(4)
    second = {k: np.roll(v, 1) * (1.5 if k == "learning_rate" else 1.0) for k, v in HP.items()}
    for values in (HP, second):
        hp = ensemble.hyperparameters(adamjax.adamw, N, **values)
        params = jax.tree.map(jnp.asarray, start)
        state = ensemble.init(adamjax.adamw(), params)
        expected = [_reference_member(m, start, grads, **values) for m in range(N)]
        for i, g in enumerate(grads):
            params, state = vmapped(params, state, hp, jax.tree.map(jnp.asarray, g))
            for member in range(N):
                for key in start:
                    np.testing.assert_allclose(
                        params[key][member],
                        expected[member][i][key],
                        rtol=1e-10,
                        atol=1e-12,
                        err_msg=f"step {i + 1}, member {member}, leaf {key}",
                    )


def test_per_member_per_leaf_hyperparameters_match_reference() -> None:
    values = dict(
        learning_rate={"w": np.array([0.1, 0.01, 0.02, 0.05]), "b": 0.003},
        b1={"w": 0.9, "b": np.array([0.5, 0.6, 0.7, 0.8])},
        b2=np.array([0.99, 0.9, 0.999, 0.95]),
        weight_decay={"w": 0.1, "b": 0.0},
    )
    hp = ensemble.hyperparameters(adamjax.adamw, N, **values)
    assert hp["learning_rate"]["b"].shape == (N,)
    start = {"w": np.ones((N, 3, 2)), "b": np.full((N, 2), -0.5)}
    grads = _open_loop_grads(5, steps=10)

    def step(params, state, hp, grads):
        updates, state = adamjax.adamw(**hp).update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    params = jax.tree.map(jnp.asarray, start)
    state = ensemble.init(adamjax.adamw, params, hp)
    vmapped = jax.jit(jax.vmap(step))
    for g in grads:
        params, state = vmapped(params, state, hp, jax.tree.map(jnp.asarray, g))
    for member in range(N):
        expected = _reference_member(member, start, grads, **values)[-1]
        for key in start:
            np.testing.assert_allclose(params[key][member], expected[key], rtol=1e-10)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_member_does_not_disturb_the_others(bad: float) -> None:
    def step(params, state, grads):
        updates, state = adamjax.adam(0.01).update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    vmapped = jax.jit(jax.vmap(step))
    grads = _open_loop_grads(6, steps=8)
    poisoned = [jax.tree.map(np.copy, g) for g in grads]
    poisoned[3]["w"][2, 1, 0] = bad  # member 2, one coordinate, step 4
    runs = []
    for sequence in (grads, poisoned):
        params = {"w": jnp.ones((N, 3, 2)), "b": jnp.zeros((N, 2))}
        state = ensemble.init(adamjax.adam(0.01), params)
        for g in sequence:
            params, state = vmapped(params, state, jax.tree.map(jnp.asarray, g))
        runs.append((params, state))
    (clean, clean_state), (dirty, dirty_state) = runs
    others = [0, 1, 3]
    for tree_clean, tree_dirty in ((clean, dirty), (clean_state, dirty_state)):
        for a, b in zip(jax.tree.leaves(tree_clean), jax.tree.leaves(tree_dirty), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[others], np.asarray(b)[others])
    assert not np.all(np.isfinite(np.asarray(dirty["w"])[2]))


def test_members_is_init_fn_per_key() -> None:
    def init(key: jax.Array) -> dict[str, jax.Array]:
        return {"u": jax.random.uniform(key, (3,), jnp.float64)}

    keys = jax.random.split(jax.random.key(3), 3)
    params = ensemble.members(init, keys)
    assert ensemble.size(params) == 3
    single = jax.jit(init)
    for i, member in enumerate(ensemble.unstack(jax.device_get(params))):
        chex.assert_trees_all_close(member, single(keys[i]), rtol=0)
    assert len({float(params["u"][i, 0]) for i in range(3)}) == 3  # the keys differ
    raw = ensemble.members(init, jax.random.split(jax.random.PRNGKey(3), 3))
    assert ensemble.size(raw) == 3
    with pytest.raises(ValueError, match="batch of PRNG keys"):
        ensemble.members(init, jax.random.key(0))


def test_init_with_hyperparameters_builds_each_members_state() -> None:
    params = {"w": jnp.zeros((3, 2))}
    hp = ensemble.hyperparameters(
        adamjax.adagrad, 3, learning_rate=0.1, initial_accumulator_value=np.array([0.0, 0.1, 2.0])
    )
    state = ensemble.init(adamjax.adagrad, params, hp)
    nu = np.asarray(state[0].nu["w"])
    np.testing.assert_array_equal(nu[:, 0], [0.0, 0.1, 2.0])
    assert np.asarray(state[0].count).shape == (3,)


def test_hyperparameters_broadcast_and_check() -> None:
    hp = ensemble.hyperparameters(adamjax.adam, 3, learning_rate=0.1, b1=np.array([0.9, 0.8, 0.7]))
    assert hp["learning_rate"].shape == (3,)
    np.testing.assert_allclose(hp["learning_rate"], 0.1)
    with pytest.raises(ValueError, match=r"b1 has leading axis 2 .* expected 3 members"):
        ensemble.hyperparameters(adamjax.adam, 3, b1=np.array([0.9, 0.8]))
    with pytest.raises(ValueError, match=r"member 1: b2 must be in \[0.0, 1.0\), got 1.5"):
        ensemble.hyperparameters(adamjax.adam, 3, b2=np.array([0.9, 1.5, 0.99]))
    with pytest.raises(ValueError, match=r"member 2: learning_rate\['b'\] must be >= 0.0"):
        ensemble.hyperparameters(
            adamjax.adam, 3, learning_rate={"w": 0.1, "b": np.array([0.1, 0.2, -1.0])}
        )
    with pytest.raises(TypeError, match="nesterov must be a number or an array"):
        ensemble.hyperparameters(adamjax.adam, 3, nesterov=True)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        ensemble.hyperparameters(adamjax.adam, 0)


def test_size_and_init_name_the_bad_path() -> None:
    with pytest.raises(ValueError, match=r"params\['b'\] has 2 members .* params\['a'\] has 3"):
        ensemble.size({"a": jnp.zeros((3, 1)), "b": jnp.zeros((2, 1))})
    with pytest.raises(ValueError, match=r"params\['s'\] is a scalar"):
        ensemble.init(adamjax.adam(), {"s": jnp.zeros(())})
    with pytest.raises(ValueError, match="hyperparameters have 2 members, but params have 3"):
        ensemble.init(adamjax.adam, {"w": jnp.zeros((3, 1))}, {"learning_rate": jnp.ones(2)})
    with pytest.raises(TypeError, match="takes a transform"):
        ensemble.init(adamjax.adam, {"w": jnp.zeros((3, 1))})


def test_stack_and_unstack_round_trip() -> None:
    trees = [{"a": jnp.full(2, float(i)), "b": (jnp.asarray(i * 1.0),)} for i in range(3)]
    stacked = ensemble.stack(trees)
    assert stacked["a"].shape == (3, 2)
    for original, back in zip(trees, ensemble.unstack(stacked), strict=True):
        chex.assert_trees_all_close(back, original, rtol=1e-7)
    with pytest.raises(ValueError, match=r"a member tree\['c'\] is not in trees\[0\]"):
        ensemble.stack([{"a": jnp.zeros(1)}, {"a": jnp.zeros(1), "c": jnp.zeros(1)}])


def test_ensemble_of_optax_matches_adamjax_ensemble() -> None:
    """Same rule, same vmap: adamjax and optax ensembles agree (float64)."""
    params0 = ensemble.stack([seeded_mlp(10 + i) for i in range(N)])

    def make(opt: Any, apply: Any):
        def step(params, state, x, y):
            grads = jax.grad(loss_fn)(params, x, y)
            updates, state = opt.update(grads, state, params)
            return apply(params, updates), state

        return jax.jit(jax.vmap(step, in_axes=(0, 0, None, None)))

    results = []
    for opt, apply in (
        (adamjax.adamw(0.01, weight_decay=0.01), adamjax.apply_updates),
        (optax.adamw(0.01, weight_decay=0.01), optax.apply_updates),
    ):
        step, params = make(opt, apply), params0
        with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
            state = jax.vmap(opt.init)(params)
            for _ in range(STEPS):
                params, state = step(params, state, X, Y)
        results.append(params)
    chex.assert_trees_all_close(results[0], results[1], rtol=1e-10, atol=1e-12)
