r"""Parameter groups: a different transform for each labelled part of the params.

:func:`partition` is torch's ``param_groups`` as a transform. Every leaf of the params carries a
label (a string), and the leaves with label ``k`` are updated by ``transforms[k]`` alone::

    labels = {"encoder": {"w": "adam", "b": "adam"}, "head": {"w": "sgd", "b": "frozen"}}
    optimizer = adamjax.partition(
        {"adam": adamjax.adam(1e-3), "sgd": adamjax.sgd(1e-2), "frozen": adamjax.set_to_zero()},
        labels,
    )

Each group's transform sees a tree with the structure of the params in which the leaves of the
other groups are ``None``, so paths in its error messages, callable masks and per-leaf
hyperparameter trees keep the user's names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp

from adamjax._base import (
    EmptyState,
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
    init_empty_state,
)
from adamjax._estimates import Moments, expect_gradients
from adamjax._tree import check_matching, map_leaves
from adamjax._validate import is_function

__all__ = ["PartitionState", "partition", "set_to_zero"]

LabelTree: TypeAlias = str | Iterable["LabelTree"] | Mapping[Any, "LabelTree"]
"""A pytree of strings with the params' structure: the label of each leaf."""

Labels: TypeAlias = LabelTree | Callable[[Any], LabelTree]
"""The labels of the params: a :data:`LabelTree`, or a callable ``params -> LabelTree``."""


class PartitionState(NamedTuple):
    """State of :func:`partition`."""

    inner_states: dict[str, Any]  # label -> the state of that group's transform


def _check_transforms(transforms: Mapping[str, Transform]) -> None:
    if not isinstance(transforms, Mapping) or not transforms:
        raise TypeError(
            "partition() transforms must be a non-empty dict mapping each label to a transform, "
            f"got {transforms!r}"
        )
    for label, transform in transforms.items():
        if not isinstance(label, str):
            raise TypeError(f"partition() labels must be strings, got the key {label!r}")
        check_transform(transform, f"partition() transforms[{label!r}]")


def _flat_labels(
    labels: Labels, reference: Any, transforms: Mapping[str, Transform], reference_name: str
) -> list[str]:
    """The label of every leaf of ``reference``, in flattening order, after every check."""
    tree = labels(reference) if is_function(labels) else labels
    check_matching(
        reference, tree, reference_name=reference_name, other_name="labels", check_shapes=False
    )
    found = jax.tree_util.tree_leaves_with_path(tree)
    for path, label in found:
        where = "labels" + jax.tree_util.keystr(path)
        if not isinstance(label, str):
            raise TypeError(f"{where} must be a string naming a transform, got {label!r}")
        if label not in transforms:
            known = ", ".join(repr(k) for k in transforms)
            raise ValueError(
                f"{where} is {label!r}, but partition() has no transform for {label!r} "
                f"(transforms: {known})"
            )
    used = {label for _, label in found}
    for label in transforms:
        if label not in used:
            raise ValueError(
                f"partition() transform {label!r} has no leaves: no entry of labels is {label!r}"
            )
    return [label for _, label in found]


def _select(leaves: list[Any], flat_labels: list[str], label: str, treedef: Any) -> Any:
    """The tree with the leaves labelled ``label`` and ``None`` everywhere else."""
    chosen = [
        leaf if mine == label else None for leaf, mine in zip(leaves, flat_labels, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, chosen)


def _merge(
    merged: list[Any], group_updates: Any, flat_labels: list[str], label: str, treedef: Any
) -> None:
    """Put the updates of the leaves labelled ``label`` in their places in ``merged``."""
    if isinstance(group_updates, Moments):
        raise TypeError(
            f"partition() transform {label!r} returned moment estimates: each group's "
            "transform must end with normalize() and a learning rate"
        )
    for i, leaf in enumerate(treedef.flatten_up_to(group_updates)):
        if flat_labels[i] == label:
            merged[i] = leaf


def partition(
    transforms: Mapping[str, Transform],
    param_labels: Labels,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    r"""Route each labelled group of parameters to its own transform (parameter groups).

    .. math::
        u_i = T_{\ell(i)}\big(g_{\{j : \ell(j) = \ell(i)\}}\big)_i

    where :math:`\ell(i)` is the label of leaf :math:`i`: each group's transform sees only its
    own leaves (gradients, state and params), exactly as if it ran alone on them.

    Args:
        transforms: a dict ``label -> transform``; any object with ``init`` and ``update``
            works, optax transforms included.
        param_labels: a pytree of strings with the structure of the params, or a callable
            ``params -> labels`` (evaluated on the params, or on the gradients when ``update``
            gets no params).

    Returns:
        A transform whose state is :class:`PartitionState`, one inner state per label.

    Raises:
        ValueError: naming the path, if the labels tree does not match the params; naming the
            path and the label, if a label has no transform; naming the label, if a transform
            has no leaves.
        TypeError: naming the path, if a label is not a string.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}
        >>> no_decay_for_vectors = lambda p: {k: "decay" if v.ndim > 1 else "plain"
        ...                                   for k, v in p.items()}
        >>> optimizer = adamjax.partition(
        ...     {"decay": adamjax.adamw(1e-3, weight_decay=0.1), "plain": adamjax.adam(1e-3)},
        ...     no_decay_for_vectors,
        ... )
        >>> state = optimizer.init(params)
    """
    if mask_compatible_extra_args:
        raise ValueError(
            "partition(mask_compatible_extra_args=True) is not available in adamjax: every "
            "group's transform receives the extra arguments whole (optax's default, False)"
        )
    _check_transforms(transforms)

    def init_fn(params: Params) -> PartitionState:
        flat_labels = _flat_labels(param_labels, params, transforms, "params")
        leaves, treedef = jax.tree_util.tree_flatten(params)
        return PartitionState(
            inner_states={
                label: transform.init(_select(leaves, flat_labels, label, treedef))
                for label, transform in transforms.items()
            }
        )

    def update_fn(
        updates: Updates, state: PartitionState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, PartitionState]:
        expect_gradients(updates, "partition")
        if params is None:
            flat_labels = _flat_labels(param_labels, updates, transforms, "grads")
        else:
            flat_labels = _flat_labels(param_labels, params, transforms, "params")
            check_matching(params, updates, other_name="grads")
        if not isinstance(state, PartitionState) or set(state.inner_states) != set(transforms):
            raise ValueError(
                "partition() got a state that is not its own: pass the state returned by its init"
            )
        leaves, treedef = jax.tree_util.tree_flatten(updates)
        param_leaves = None if params is None else treedef.flatten_up_to(params)
        merged: list[Any] = [None] * len(leaves)
        inner_states = {}
        for label, transform in transforms.items():
            group_params = (
                None if param_leaves is None else _select(param_leaves, flat_labels, label, treedef)
            )
            group_updates, inner_states[label] = call_update(
                transform,
                _select(leaves, flat_labels, label, treedef),
                state.inner_states[label],
                group_params,
                extra_args,
            )
            _merge(merged, group_updates, flat_labels, label, treedef)
        return jax.tree_util.tree_unflatten(treedef, merged), PartitionState(inner_states)

    return GradientTransformation(init_fn, update_fn)


def set_to_zero() -> GradientTransformation:
    r"""Zero updates: :math:`u \leftarrow 0`, in the dtype of the gradients.

    Freezes the leaves it is given, typically one group of :func:`partition`. Unlike
    ``scale(0.0)`` the result is zero even where a gradient is NaN or infinite, and leaves of
    any dtype are accepted: integer counters and boolean flags get zeros of their dtype, and
    the ``float0`` gradients that ``jax.grad(..., allow_int=True)`` gives integer and boolean
    params stay ``float0``. :func:`adamjax.apply_updates` leaves an integer or boolean param
    unchanged under either.

    Returns:
        A :class:`adamjax.GradientTransformation` taking anything and emitting zero updates of the
            same structure.

    Example:
        >>> import jax, jax.numpy as jnp, adamjax
        >>> params = {"w": jnp.ones(2), "step": jnp.asarray(3, jnp.int32)}
        >>> optimizer = adamjax.partition(
        ...     {"adam": adamjax.adam(0.1), "frozen": adamjax.set_to_zero()},
        ...     {"w": "adam", "step": "frozen"},
        ... )
        >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2), allow_int=True)(params)
        >>> updates, _ = optimizer.update(grads, optimizer.init(params), params)
        >>> new = adamjax.apply_updates(params, updates)
        >>> new["w"], new["step"]
        (Array([0.9, 0.9], dtype=float32), Array(3, dtype=int32))
    """

    def update_fn(
        updates: Updates, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_gradients(updates, "set_to_zero")
        return map_leaves(jnp.zeros_like, updates), state

    return GradientTransformation(init_empty_state, update_fn)
