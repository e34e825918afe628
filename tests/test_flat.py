"""adamjax.flat: packing, unpacking, and the flat step equal to the tree step, step by step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import flat
from tests import reference as ref
from tests import test_reference as reference_cases

STEPS = 30


def _mixed_tree() -> dict[str, Any]:
    """Nested, with a scalar, a None leaf, an empty leaf and two dtypes."""
    rng = np.random.default_rng(1)
    return {
        "enc": {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "empty": np.zeros((0, 2))},
        "scale": np.float32(1.5),
        "skip": None,
        "head": [rng.normal(size=(2, 2)).astype(jnp.bfloat16), rng.normal(size=5)],
    }


def _as_jax(tree: Any, dtype: Any = jnp.float32) -> Any:
    def convert(x: Any) -> jax.Array:
        x = jnp.asarray(x)
        return x if x.dtype == jnp.bfloat16 else x.astype(dtype)

    return jax.tree.map(convert, tree)


def test_ravel_unravel_round_trip_keeps_structure_shapes_dtypes_and_values() -> None:
    params = _as_jax(_mixed_tree())
    packed = flat.ravel(params)
    assert packed.layout.names == ("float32", "bfloat16")  # in order of first appearance
    assert packed.layout.sizes == (4 + 0 + 3 * 4 + 5 + 1, 4)
    assert [b.dtype for b in packed.buffers] == [jnp.float32, jnp.bfloat16]
    chex.assert_trees_all_equal(packed.unravel(), params, strict=True)


def test_flat_params_are_a_pytree_with_named_buffers() -> None:
    packed = flat.ravel({"a": jnp.ones(3, jnp.float32), "b": jnp.ones((2, 2), jnp.float32)})
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(packed)]
    assert paths == ["['float32']"]
    doubled = jax.tree.map(lambda x: 2 * x, packed)
    assert isinstance(doubled, flat.FlatParams) and doubled.layout == packed.layout
    chex.assert_trees_all_equal(doubled.unravel(), {"a": 2 * np.ones(3), "b": 2 * np.ones((2, 2))})


def test_groups_put_each_label_and_dtype_in_its_own_buffer() -> None:
    params = _as_jax(_mixed_tree())
    labels = jax.tree.map(lambda x: x.ndim > 1, params)
    packed = flat.ravel(params, groups=labels)
    assert packed.layout.names == ("False/float32", "True/float32", "True/bfloat16")
    assert flat.ravel(params, groups=lambda p: labels).layout == packed.layout
    chex.assert_trees_all_equal(packed.unravel(), params)


def test_gradient_through_unravel_is_a_flat_params_with_the_tree_gradient() -> None:
    params = _as_jax(_mixed_tree())

    def loss(tree: Any) -> jax.Array:
        terms = [jnp.sum(jnp.sin(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)]
        return jnp.sum(jnp.stack(terms))

    packed = flat.ravel(params)
    grads = jax.grad(lambda p: loss(p.unravel()))(packed)
    assert isinstance(grads, flat.FlatParams) and grads.layout == packed.layout
    expected = packed.layout.ravel(jax.grad(loss)(params))
    for mine, theirs in zip(grads.buffers, expected.buffers, strict=True):
        np.testing.assert_array_equal(np.asarray(mine, np.float64), np.asarray(theirs, np.float64))


def test_layout_ravel_rejects_a_different_tree() -> None:
    packed = flat.ravel({"a": jnp.ones(3), "b": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"tree\['b'\] has shape \(3,\)"):
        packed.layout.ravel({"a": jnp.ones(3), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"tree\['c'\] is not in layout"):
        packed.layout.ravel({"a": jnp.ones(3), "b": jnp.ones(2), "c": jnp.ones(1)})
    with pytest.raises(ValueError, match=r"tree\['a'\] has dtype bfloat16"):
        packed.layout.ravel({"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2)})


def test_bad_groups_are_rejected_naming_the_path() -> None:
    params = {"a": jnp.ones(3), "b": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"groups\['c'\] is not in params"):
        flat.ravel(params, groups={"a": "x", "b": "y", "c": "z"})
    with pytest.raises(TypeError, match=r"groups\['b'\] must be a string, number or bool"):
        flat.ravel(params, groups={"a": "x", "b": b"bytes"})


def test_per_buffer_shares_uniform_values_and_expands_the_rest() -> None:
    params = {"a": jnp.ones(2), "b": jnp.ones(3), "c": jnp.ones((), jnp.bfloat16)}
    packed = flat.ravel(params)
    assert packed.per_buffer(0.1) == 0.1
    uniform = packed.per_buffer({"a": 0.5, "b": 0.5, "c": 0.25})
    assert uniform.buffers == (0.5, 0.25)
    mixed = packed.per_buffer({"a": True, "b": False, "c": True})
    np.testing.assert_array_equal(mixed.buffers[0], [True, True, False, False, False])
    assert mixed.buffers[0].dtype == jnp.bool_ and mixed.buffers[1] is True
    with pytest.raises(ValueError, match=r"mask\['b'\] has shape \(3,\)"):
        packed.per_buffer({"a": True, "b": jnp.ones(3, bool), "c": True}, name="mask")
    with pytest.raises(ValueError, match=r"lr\['d'\] is not in params"):
        packed.per_buffer({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}, name="lr")


# ----------------------------------------------------------------------------------------------
# The flat step equals the tree step.


def _run(transform: Any, params: Any, grads: list[Any], to_flat: Callable[[Any], Any]) -> Any:
    """Params after every step (a leading step axis, as NumPy), the whole run in one scan."""
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *[to_flat(g) for g in grads])
    start = to_flat(params)

    @jax.jit
    def run(params: Any, stacked: Any) -> Any:
        def step(carry: Any, g: Any) -> tuple[Any, Any]:
            params, state = carry
            updates, state = transform.update(g, state, params)
            params = adamjax.apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params, transform.init(params)), stacked)[1]

    return jax.tree.map(np.asarray, run(start, stacked))


def _unravel_history(history: flat.FlatParams) -> Any:
    """``unravel`` of every step at once: (steps, size) buffers -> (steps, *shape) leaves."""
    steps = history.buffers[0].shape[0]
    leaves = [
        history.buffers[s.buffer][:, s.offset : s.offset + math.prod(s.shape)].reshape(
            steps, *s.shape
        )
        for s in history.layout.slots
    ]
    return history.layout.treedef.unflatten(leaves)


def _problem(dtype: Any, shapes: dict[str, tuple[int, ...]], steps: int = STEPS) -> tuple:
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in shapes.items()}
    scales = np.exp(rng.normal(size=steps))  # gradients whose size varies from step to step
    grads = [
        {k: jnp.asarray(c * rng.normal(size=s) + 0.3, dtype) for k, s in shapes.items()}
        for c in scales
    ]
    return params, grads


def _assert_same(flat_history: flat.FlatParams, tree_history: Any, label: str) -> None:
    """Equal to float32 rounding, at every step (axis 0 of the mismatch index is the step).

    Both runs do the same arithmetic on the same numbers, but XLA compiles a loop over a 17-element
    buffer and loops over 12-, 4- and 1-element leaves with different vector/scalar splits, and
    multiply-adds may be contracted differently in the two; over 30 steps this stays within a
    couple of float32 ulps of the params' scale (measured: at most 2.4e-7).
    """
    mine = jax.tree_util.tree_leaves_with_path(_unravel_history(flat_history))
    theirs = jax.tree.leaves(tree_history)
    for (path, a), b in zip(mine, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, (label, path)
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-6, atol=1e-6,
            err_msg=f"{label}: leaf {jax.tree_util.keystr(path)}",
        )  # fmt: skip


@pytest.mark.parametrize("name", ["adam", "adamw", "amsgrad", "adamax", "nadam", "keras-adam"])
def test_flat_equals_tree_float32(name: str) -> None:
    factory = reference_cases.CASES[name][0]
    params, grads = _problem(jnp.float32, reference_cases.SHAPES)
    layout = flat.ravel(params).layout
    mine = _run(factory(), params, grads, layout.ravel)
    theirs = _run(factory(), params, grads, lambda tree: tree)
    _assert_same(mine, theirs, label=name)


@pytest.mark.parametrize("name", list(reference_cases.CASES))
def test_every_reference_case_flat_matches_the_float64_reference(name: str) -> None:
    factory, reference_class, hyperparameters = reference_cases.CASES[name]
    params, grads = reference_cases._problem(np.float64)
    layout = flat.ravel(_as_jax(params, jnp.float64)).layout
    mine = _run(factory(), _as_jax(params, jnp.float64), [_as_jax(g, jnp.float64) for g in grads],
                layout.ravel)  # fmt: skip
    expected = ref.run_tree(reference_class, params, grads, **hyperparameters)
    assert len(expected) == reference_cases.STEPS
    tolerance = reference_cases.TOLERANCE[np.float64]
    for key, value in _unravel_history(mine).items():
        assert value.shape[0] == reference_cases.STEPS
        np.testing.assert_allclose(
            value, np.stack([step[key] for step in expected]), rtol=tolerance["rtol"],
            atol=tolerance["atol"], err_msg=f"{name}: leaf {key!r} (axis 0 is the step)",
        )  # fmt: skip


SHAPES = {"w1": (5, 3), "b1": (3,), "w2": (3, 2), "b2": (2,), "norm": ()}
DECAY = {"w1": True, "b1": False, "w2": True, "b2": False, "norm": False}
B1 = {"w1": 0.9, "b1": 0.8, "w2": 0.9, "b2": 0.8, "norm": 0.95}
LR = {"w1": 0.01, "b1": 0.03, "w2": 0.01, "b2": 0.03, "norm": 0.003}


def _decay_mask(params: Any) -> Any:
    return jax.tree.map(lambda p: p.ndim > 1, params)


# name -> (optimizer from a per-leaf translation `leafwise`, groups for ravel)
PER_LEAF_CASES: dict[str, tuple[Callable[[Callable[[Any], Any]], Any], Any]] = {
    "adamw-mask-tree": (lambda leafwise: adamjax.adamw(0.01, weight_decay=0.1,
                                                       mask=leafwise(DECAY)), None),
    "adamw-mask-tree-grouped": (lambda leafwise: adamjax.adamw(0.01, weight_decay=0.1,
                                                               mask=leafwise(DECAY)), DECAY),
    "adam-per-leaf-b1-lr": (lambda leafwise: adamjax.adam(leafwise(LR), b1=leafwise(B1)), None),
    "adam-per-leaf-b1-lr-grouped": (
        lambda leafwise: adamjax.adam(leafwise(LR), b1=leafwise(B1)), LR),
    "adamw-per-leaf-decay-mask": (
        lambda leafwise: adamjax.adamw(
            0.02, weight_decay=leafwise({**LR, "w1": 0.2}), mask=leafwise(DECAY)), None),
    "nadam": (lambda leafwise: adamjax.nadam(0.01), None),
    "adam-bfloat16-moments": (
        lambda leafwise: adamjax.adam(0.01, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16), None),
}  # fmt: skip


@pytest.mark.parametrize("name", list(PER_LEAF_CASES))
def test_per_leaf_hyperparameters_and_masks_flat_equals_tree(name: str) -> None:
    make, groups = PER_LEAF_CASES[name]
    params, grads = _problem(jnp.float32, SHAPES)
    packed = flat.ravel(params, groups=groups)
    mine = _run(make(packed.per_buffer), params, grads, packed.layout.ravel)
    theirs = _run(make(lambda tree: tree), params, grads, lambda tree: tree)
    _assert_same(mine, theirs, label=name)


def test_callable_mask_sees_the_flat_params() -> None:
    params, grads = _problem(jnp.float32, SHAPES)
    packed = flat.ravel(params)
    mine = _run(
        adamjax.adamw(0.01, weight_decay=0.1,
                      mask=lambda p: p.per_buffer(_decay_mask(p.unravel()))),
        params, grads, packed.layout.ravel,
    )  # fmt: skip
    theirs = _run(
        adamjax.adamw(0.01, weight_decay=0.1, mask=_decay_mask), params, grads, lambda t: t
    )
    _assert_same(mine, theirs, label="callable mask")


def test_mixed_dtypes_flat_equals_tree() -> None:
    params = _as_jax(_mixed_tree())
    rng = np.random.default_rng(2)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(10)
    ]
    layout = flat.ravel(params).layout
    mine = _run(adamjax.adamw(0.01, weight_decay=0.1), params, grads, layout.ravel)
    theirs = _run(adamjax.adamw(0.01, weight_decay=0.1), params, grads, lambda t: t)
    _assert_same(mine, theirs, label="mixed dtypes")


def test_optimizer_state_is_flat_and_small() -> None:
    params = {f"p{i}": jnp.ones(7, jnp.float32) for i in range(50)}
    packed = flat.ravel(params)
    state = adamjax.adam(1e-3, mu_dtype=jnp.bfloat16).init(packed)
    moments = state[0]
    assert isinstance(moments.mu, flat.FlatParams) and isinstance(moments.nu, flat.FlatParams)
    assert [b.shape for b in moments.mu.buffers] == [(350,)]
    assert (
        moments.mu.buffers[0].dtype == jnp.bfloat16 and moments.nu.buffers[0].dtype == jnp.float32
    )


def test_flat_step_compiles_once_and_donates() -> None:
    params = {f"p{i}": jnp.ones(4, jnp.float32) for i in range(20)}
    packed = flat.ravel(params)
    optimizer = adamjax.adam(1e-3)

    @chex.assert_max_traces(n=1)
    def step(p: Any, s: Any, g: Any) -> Any:
        updates, s = optimizer.update(g, s, p)
        return adamjax.apply_updates(p, updates), s

    jitted = jax.jit(step, donate_argnums=(0, 1))
    state = optimizer.init(packed)
    grads = jax.tree.map(jnp.ones_like, packed)
    for _ in range(3):
        packed, state = jitted(packed, state, grads)
    stats = jitted.lower(packed, state, grads).compile().memory_analysis()
    if stats is not None:  # the donated params and moments are updated in place
        assert stats.alias_size_in_bytes >= 3 * 80 * 4
