"""Parameter groups: partition() equals each group's optimizer run on its own leaves."""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from tests import reference as ref

STEPS = 20


def _params() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "embed": jnp.asarray(rng.normal(size=(5, 3))),
        "layers": [
            {"w": jnp.asarray(rng.normal(size=(3, 3))), "b": jnp.asarray(rng.normal(size=3))},
            {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))},
        ],
        "norm": (jnp.asarray(rng.normal(size=3)), None),
    }


LABELS = {
    "embed": "slow",
    "layers": [{"w": "main", "b": "no_decay"}, {"w": "main", "b": "no_decay"}],
    "norm": ("no_decay", None),
}


def _grads(seed: int, like: Any) -> Any:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) + 0.1), like)


def _transforms() -> dict[str, Any]:
    return {
        "main": adamjax.adamw(0.01, weight_decay=0.1),
        "no_decay": adamjax.adam(0.02, b1=0.8),
        "slow": adamjax.sgd(0.001, momentum=0.9),
    }


def _run(transform: Any, params: Any, grads_seq: list[Any], jit: bool = False) -> list[Any]:
    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = transform.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)
    state, history = transform.init(params), []
    for g in grads_seq:
        params, state = step(params, state, g)
        history.append(params)
    return history


def _group(tree: Any, label: str) -> list[Any]:
    """The leaves of ``tree`` labelled ``label``, as a flat list (a tree of its own)."""
    flat_labels = jax.tree.leaves(LABELS)
    return [
        leaf for leaf, mine in zip(jax.tree.leaves(tree), flat_labels, strict=True) if mine == label
    ]


def test_partition_equals_each_groups_optimizer_run_separately() -> None:
    params = _params()
    grads = [_grads(i, params) for i in range(STEPS)]
    together = _run(adamjax.partition(_transforms(), LABELS), params, grads, jit=True)
    for label, transform in _transforms().items():
        alone = _run(transform, _group(params, label), [_group(g, label) for g in grads])
        for t, (mixed, separate) in enumerate(zip(together, alone, strict=True)):
            for a, b in zip(_group(mixed, label), separate, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=f"{label} step {t}")
    assert together[-1]["norm"][1] is None


def test_partition_matches_the_reference_per_group() -> None:
    params = _params()
    grads = [_grads(i, params) for i in range(STEPS)]
    final = _run(adamjax.partition(_transforms(), LABELS), params, grads)[-1]
    reference = {
        "main": (ref.AdamW, dict(lr=0.01, weight_decay=0.1)),
        "no_decay": (ref.Adam, dict(lr=0.02, b1=0.8)),
        "slow": (ref.SGD, dict(lr=0.001, momentum=0.9)),
    }
    for label, (cls, hp) in reference.items():
        for i, (start, mine) in enumerate(
            zip(_group(params, label), _group(final, label), strict=True)
        ):
            leaf_grads = [_group(g, label)[i] for g in grads]
            expected = ref.run(cls, np.asarray(start), [np.asarray(g) for g in leaf_grads], **hp)
            np.testing.assert_allclose(mine, expected[-1], rtol=1e-10, err_msg=label)


def test_partition_matches_optax_partition() -> None:
    params = _params()
    grads = [_grads(i, params) for i in range(STEPS)]
    ours = _run(adamjax.partition(_transforms(), LABELS), params, grads)[-1]
    theirs_tx = optax.partition(
        {
            "main": optax.adamw(0.01, weight_decay=0.1),
            "no_decay": optax.adam(0.02, b1=0.8),
            "slow": optax.sgd(0.001, momentum=0.9),
        },
        LABELS,
    )
    with jax.numpy_dtype_promotion("standard"):  # optax relies on implicit promotion
        state, theirs = theirs_tx.init(params), params
        for g in grads:
            updates, state = theirs_tx.update(g, state, theirs)
            theirs = optax.apply_updates(theirs, updates)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_labels_from_a_function_of_the_params() -> None:
    """No weight decay for vectors (biases, norms): labels computed from the params."""

    def labels(params: Any) -> Any:
        return jax.tree.map(lambda p: "decay" if p.ndim > 1 else "no_decay", params)

    transforms = {
        "decay": adamjax.adamw(0.01, weight_decay=0.5),
        "no_decay": adamjax.adamw(0.01, weight_decay=0.0),
    }
    per_leaf = adamjax.adamw(
        0.01, weight_decay=jax.tree.map(lambda p: 0.5 if p.ndim > 1 else 0.0, _params())
    )
    params = _params()
    grads = [_grads(i, params) for i in range(5)]
    a = _run(adamjax.partition(transforms, labels), params, grads)[-1]
    b = _run(per_leaf, params, grads)[-1]
    chex.assert_trees_all_close(a, b, rtol=1e-14)
    # without params, the labels come from the gradients
    transform = adamjax.partition(
        {"decay": adamjax.adam(0.1), "no_decay": adamjax.sgd(0.1)}, labels
    )
    updates, _ = transform.update(grads[0], transform.init(params))
    np.testing.assert_allclose(updates["layers"][0]["b"], -0.1 * grads[0]["layers"][0]["b"])


def test_a_group_can_use_a_callable_mask_and_be_frozen() -> None:
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2), "step": jnp.zeros((), jnp.int32)}
    labels = {"w": "train", "b": "train", "step": "frozen"}
    transform = adamjax.partition(
        {
            "train": adamjax.adamw(
                0.1, weight_decay=1.0, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
            ),
            "frozen": adamjax.set_to_zero(),
        },
        labels,
    )
    state = transform.init(params)
    grads = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2), "step": jnp.asarray(7, jnp.int32)}
    updates, _ = transform.update(grads, state, params)
    np.testing.assert_allclose(updates["w"], -0.1 * np.ones((2, 2)))  # decayed
    np.testing.assert_allclose(updates["b"], 0.0)  # masked out: no decay for the bias
    assert updates["step"] == 0 and updates["step"].dtype == jnp.int32


def test_set_to_zero_ignores_non_finite_gradients() -> None:
    transform = adamjax.set_to_zero()
    grads = {"a": jnp.asarray([jnp.nan, jnp.inf])}
    updates, _ = transform.update(grads, transform.init(grads))
    chex.assert_trees_all_equal(updates, {"a": np.zeros(2)})


def test_partition_under_jit_and_vmap_does_not_recompile() -> None:
    transform = adamjax.partition(_transforms(), LABELS)

    @chex.assert_max_traces(n=1)
    def step(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    batched = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), _params())
    state = adamjax.ensemble.init(transform, batched)
    vmapped = jax.jit(jax.vmap(step))
    for i in range(3):
        batched, state = vmapped(batched, state, jax.tree.map(lambda p, i=i: p + i, batched))
    assert batched["norm"][1] is None


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (
            {**LABELS, "embed": "frozen"},
            ValueError,
            r"labels\['embed'\] is 'frozen', but partition\(\) has no transform for 'frozen'",
        ),
        (
            {**LABELS, "embed": "main"},
            ValueError,
            r"partition\(\) transform 'slow' has no leaves",
        ),
        (
            {**LABELS, "extra": "main"},
            ValueError,
            r"labels\['extra'\] is not in params",
        ),
        (
            {k: v for k, v in LABELS.items() if k != "embed"},
            ValueError,
            r"params\['embed'\] has no entry in labels",
        ),
        (
            {**LABELS, "layers": [{"w": "main", "b": "no_decay"}]},
            ValueError,
            r"params\['layers'\]\[1\]\['b'\] has no entry in labels",
        ),
        (
            {**LABELS, "embed": 3},
            TypeError,
            r"labels\['embed'\] must be a string naming a transform, got 3",
        ),
    ],
    ids=[
        "label-without-transform",
        "transform-without-leaves",
        "extra-label",
        "missing-label",
        "missing-nested-label",
        "non-string-label",
    ],
)
def test_bad_labels_name_the_label_or_path(labels: Any, error: type, message: str) -> None:
    transform = adamjax.partition(_transforms(), labels)
    with pytest.raises(error, match=message):
        transform.init(_params())
    # the same check guards update
    good_state = adamjax.partition(_transforms(), LABELS).init(_params())
    with pytest.raises(error, match=message):
        transform.update(_grads(0, _params()), good_state, _params())
