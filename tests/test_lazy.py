"""lazy_adam: rows without a gradient keep their params and moments; torch SparseAdam's rule.

Only the comparisons with torch need torch; they are skipped without it, the rest runs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from tests import reference as ref

VOCAB, DIM = 30, 4
F64 = jnp.float64


def _row_sparse_grads(seed: int, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, values) per step: a few distinct rows with nonzero gradient rows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        rows = np.sort(rng.choice(VOCAB, size=rng.integers(1, 8), replace=False))
        values = rng.normal(size=(len(rows), DIM)) * np.exp(rng.normal())
        out.append((rows, values))
    return out


def _dense(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    grad = np.zeros((VOCAB, DIM))
    grad[rows] = values
    return grad


@pytest.mark.slow  # steps torch.optim.SparseAdam side by side; CI runs it
def test_matches_torch_sparse_adam_on_the_same_gradients() -> None:
    torch = pytest.importorskip("torch")
    table = np.random.default_rng(0).normal(size=(VOCAB, DIM))
    weight = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
    theirs = torch.optim.SparseAdam([weight], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    optimizer = adamjax.lazy_adam(0.01, 0.8, 0.99, 1e-6)
    mine = jnp.asarray(table)
    state = optimizer.init(mine)
    step = jax.jit(optimizer.update)
    for rows, values in _row_sparse_grads(1, 25):
        indices = torch.tensor(rows[None, :], dtype=torch.int64)
        weight.grad = torch.sparse_coo_tensor(
            indices, torch.tensor(values), (VOCAB, DIM), check_invariants=True
        )
        theirs.step()
        updates, state = step(jnp.asarray(_dense(rows, values)), state, mine)
        mine = adamjax.apply_updates(mine, updates)
        np.testing.assert_allclose(
            np.asarray(mine), weight.detach().numpy(), rtol=1e-12, atol=1e-14
        )
        torch_state = theirs.state[weight]
        np.testing.assert_allclose(state.mu, torch_state["exp_avg"].numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(
            state.nu, torch_state["exp_avg_sq"].numpy(), rtol=1e-12, atol=1e-15
        )
        assert int(state.count) == torch_state["step"]


def _embedding_problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(VOCAB, DIM)) * 0.1
    head = rng.normal(size=DIM)
    # the batches only ever look up the first 20 rows; rows 20..29 are never used
    batches = [(rng.integers(0, 20, size=6), rng.normal(size=6)) for _ in range(25)]
    return table, head, batches


def _loss(table: jax.Array, head: jax.Array, ids: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((table[ids] @ head - y) ** 2)


def _train_lazy_embedding(
    table: np.ndarray, head: np.ndarray, batches: list[tuple], lr: float
) -> tuple[list[np.ndarray], Any, list[float]]:
    """lazy_adam on the embedding problem: params after each step, final state, batch losses."""
    optimizer = adamjax.lazy_adam(lr)
    params = jnp.asarray(table)
    state = optimizer.init(params)
    grad_fn = jax.jit(jax.grad(_loss))
    step = jax.jit(optimizer.update)
    history, losses = [], []
    for ids, y in batches:
        grads = grad_fn(params, jnp.asarray(head), jnp.asarray(ids), jnp.asarray(y))
        updates, state = step(grads, state, params)
        params = adamjax.apply_updates(params, updates)
        history.append(np.asarray(params))
        losses.append(float(_loss(params, jnp.asarray(head), jnp.asarray(ids), jnp.asarray(y))))
    return history, state, losses


@pytest.mark.slow  # steps torch.optim.SparseAdam side by side; CI runs it
def test_embedding_model_trains_like_torch_sparse_adam() -> None:
    torch = pytest.importorskip("torch")
    table, head, batches = _embedding_problem()
    embedding = torch.nn.Embedding(VOCAB, DIM, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor(table))
    torch_head = torch.tensor(head)
    theirs = torch.optim.SparseAdam(embedding.parameters(), lr=0.05)
    history, _, _ = _train_lazy_embedding(table, head, batches, 0.05)
    for (ids, y), mine in zip(batches, history, strict=True):
        theirs.zero_grad()
        loss = torch.mean((embedding(torch.tensor(ids)) @ torch_head - torch.tensor(y)) ** 2)
        loss.backward()
        theirs.step()
        np.testing.assert_allclose(mine, embedding.weight.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_embedding_model_trains_and_leaves_rows_never_looked_up_alone() -> None:
    table, head, batches = _embedding_problem()
    history, state, losses = _train_lazy_embedding(table, head, batches, 0.05)
    params = history[-1]
    # rows never looked up: params and moments exactly as they started
    assert params[20:].tobytes() == table[20:].tobytes()
    assert not np.any(np.asarray(state.mu[20:]))
    assert not np.any(np.asarray(state.nu[20:]))
    assert np.all(params[:20] != table[:20])
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_a_row_without_gradient_keeps_params_and_moments_where_dense_adam_moves_it() -> None:
    table = jnp.ones((3, 2), F64)
    first = jnp.asarray([[1.0, 1.0], [1.0, -1.0], [0.0, 0.0]], F64)
    second = jnp.asarray([[0.5, 0.5], [0.0, 0.0], [0.0, 0.0]], F64)  # row 1 not looked up
    lazy, dense = adamjax.lazy_adam(0.1), adamjax.adam(0.1)
    lazy_state, dense_state = lazy.init(table), dense.init(table)
    _, lazy_state = lazy.update(first, lazy_state, table)
    _, dense_state = dense.update(first, dense_state, table)
    mu_before, nu_before = np.asarray(lazy_state.mu), np.asarray(lazy_state.nu)
    lazy_updates, lazy_state = lazy.update(second, lazy_state, table)
    dense_updates, _ = dense.update(second, dense_state, table)
    assert np.all(np.asarray(lazy_updates[1:]) == 0.0)
    assert np.asarray(lazy_state.mu[1]).tobytes() == mu_before[1].tobytes()
    assert np.asarray(lazy_state.nu[1]).tobytes() == nu_before[1].tobytes()
    assert np.all(np.asarray(dense_updates[1]) != 0.0)  # momentum moves it in dense Adam
    assert np.all(np.asarray(lazy_updates[0]) != 0.0)
    assert int(lazy_state.count) == 2  # t counts every step, not the row's updates


def test_every_row_active_is_the_epsilon_hat_rule_of_the_reference() -> None:
    """With no zero rows (or mask=False), the rule is Keras' Adam: eps outside the correction."""
    rng = np.random.default_rng(3)
    params = {"table": rng.normal(size=(5, 3)), "bias": rng.normal(size=3)}
    grads = [{k: rng.normal(size=v.shape) + 0.2 for k, v in params.items()} for _ in range(20)]
    grads[5]["bias"][1] = 0.0  # a zero entry: lazy would hold it, the mask turns laziness off
    optimizer = adamjax.lazy_adam(0.02, eps=1e-3, mask={"table": True, "bias": False})
    mine = {k: jnp.asarray(v) for k, v in params.items()}
    state = optimizer.init(mine)
    expected = ref.run_tree(ref.KerasAdam, params, grads, lr=0.02, eps=1e-3)
    step = jax.jit(optimizer.update)
    for g, want in zip(grads, expected, strict=True):
        updates, state = step({k: jnp.asarray(v) for k, v in g.items()}, state, mine)
        mine = adamjax.apply_updates(mine, updates)
        for key in params:
            np.testing.assert_allclose(mine[key], want[key], rtol=1e-12, atol=1e-14)


def _moved_after_a_sparse_step(params: jax.Array, sparse: jax.Array) -> np.ndarray:
    """Which entries lazy_adam moves on a step with gradient ``sparse``, after a first step with
    a gradient of ones everywhere (so that every entry has momentum to move by)."""
    optimizer = adamjax.lazy_adam(0.1)
    state = optimizer.init(params)
    _, state = optimizer.update(jnp.ones_like(params), state, params)
    updates, _ = optimizer.update(sparse, state, params)
    return np.asarray(updates) != 0.0


def test_rows_are_slices_along_the_first_axis() -> None:
    """One nonzero entry makes its whole row (a slice along axis 0) active; a vector's rows are
    its entries, and a scalar is one row."""
    cube = jnp.zeros((3, 2, 2), F64)
    moved = _moved_after_a_sparse_step(cube, cube.at[1, 0, 1].set(1.0))
    np.testing.assert_array_equal(moved.reshape(3, -1).all(axis=1), [False, True, False])
    np.testing.assert_array_equal(moved.reshape(3, -1).any(axis=1), [False, True, False])
    vector = jnp.zeros(3, F64)
    moved = _moved_after_a_sparse_step(vector, jnp.asarray([0.0, 2.0, 0.0], F64))
    np.testing.assert_array_equal(moved, [False, True, False])
    assert not _moved_after_a_sparse_step(jnp.zeros((), F64), jnp.zeros((), F64))


def test_schedule_sees_the_steps_already_taken() -> None:
    seen: list[Any] = []

    def schedule(count: jax.Array) -> jax.Array:
        seen.append(int(count))
        return jnp.asarray(0.1, F64)

    optimizer = adamjax.lazy_adam(schedule)
    params = jnp.zeros(2, F64)
    state = optimizer.init(params)
    for _ in range(3):
        _, state = optimizer.update(jnp.ones(2, F64), state, params)
    assert seen == [0, 1, 2]


def test_under_vmap_each_member_has_its_own_rows() -> None:
    optimizer = adamjax.lazy_adam(0.1)
    params = jnp.zeros((2, 3, 2), F64)
    grads = jnp.zeros((2, 3, 2), F64).at[0, 0].set(1.0).at[1, 2].set(-1.0)
    state = jax.jit(jax.vmap(optimizer.init))(params)
    updates, state = jax.jit(jax.vmap(optimizer.update))(grads, state, params)
    moved = np.any(np.asarray(updates) != 0.0, axis=-1)
    np.testing.assert_array_equal(moved, [[True, False, False], [False, False, True]])
