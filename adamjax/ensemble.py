r"""Ensembles: many models, each with its own optimizer state and hyperparameters, in one step.

Every adamjax hyperparameter is data, so an ensemble is plain ``jax.vmap``: params and optimizer
state carry a leading member axis, hyperparameters are arrays with one entry per member, and the
optimizer is built inside the step from them::

    keys = jax.random.split(jax.random.key(0), 32)
    params = adamjax.ensemble.members(init_mlp, keys)                  # leading axis 32
    hyperparameters = adamjax.ensemble.hyperparameters(
        adamjax.adamw, 32, learning_rate=jnp.logspace(-4, -1, 32), weight_decay=1e-4
    )
    opt_state = adamjax.ensemble.init(adamjax.adamw, params, hyperparameters)

    def train_step(params, opt_state, hyperparameters, x, y):  # one member, as usual
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        optimizer = adamjax.adamw(**hyperparameters)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return adamjax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(jax.vmap(train_step, in_axes=(0, 0, 0, None, None)))

New hyperparameter values are new arguments of the same shape: the step is not compiled again.
Members never mix: a member whose gradients are NaN leaves the others exactly as they would be.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._base import GradientTransformation, Params
from adamjax._tree import check_matching
from adamjax._validate import check_int, member_axis_allowed

__all__ = ["hyperparameters", "init", "members", "size", "stack", "unstack"]

ParamsT = TypeVar("ParamsT", bound=Params)

Factory = Callable[..., GradientTransformation]


def size(tree: Any, name: str = "params") -> int:
    """The number of members: the length of the leading axis shared by every leaf.

    Args:
        tree: a pytree whose leaves share a leading member axis.
        name: the name of ``tree`` in error messages.

    Returns:
        The length of the member axis.

    Raises:
        ValueError: naming the path of a scalar leaf, or of a leaf whose leading axis differs
            from the first leaf's; or if ``tree`` has no leaves.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    if not leaves:
        raise ValueError(f"{name} has no leaves, so it has no member axis")
    first_path, first = leaves[0]
    for path, leaf in leaves:
        where = name + jax.tree_util.keystr(path)
        if jnp.ndim(leaf) == 0:
            raise ValueError(f"{where} is a scalar; every leaf needs a leading member axis")
        if jnp.shape(leaf)[0] != jnp.shape(first)[0]:
            raise ValueError(
                f"{where} has {jnp.shape(leaf)[0]} members (shape {jnp.shape(leaf)}), but "
                f"{name}{jax.tree_util.keystr(first_path)} has {jnp.shape(first)[0]}"
            )
    return int(jnp.shape(first)[0])


def members(init_fn: Callable[[jax.Array], ParamsT], keys: jax.Array) -> ParamsT:
    """Params of one model per PRNG key, stacked on a leading member axis.

    ``members(init_fn, keys)`` is ``jax.jit(jax.vmap(init_fn))(keys)``: member ``i`` is
    exactly ``init_fn(keys[i])``, and the whole batch is one compiled call.

    Args:
        init_fn: ``key -> params`` for one model.
        keys: a batch of keys, e.g. ``jax.random.split(jax.random.key(0), 32)`` (typed keys of
            shape ``(n,)`` or raw ``uint32`` keys of shape ``(n, 2)``).

    Returns:
        The params of every member, stacked on a leading axis of length ``len(keys)``.

    Raises:
        ValueError: if ``keys`` is a single key rather than a batch.
    """
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    if keys.ndim != (1 if typed else 2):
        raise ValueError(
            f"keys must be a batch of PRNG keys, e.g. jax.random.split(key, n); got shape "
            f"{keys.shape} with dtype {keys.dtype}"
        )
    return _vmapped(init_fn, keys)


def stack(trees: Sequence[Any]) -> Any:
    """Stack member trees into one tree with a leading member axis (the inverse of :func:`unstack`).

    Args:
        trees: one pytree per member, all of the same structure, shapes and dtypes.

    Returns:
        One pytree whose leaves have a leading member axis.

    Raises:
        ValueError: if ``trees`` is empty, or naming the first path where the trees differ.
    """
    if not trees:
        raise ValueError("stack() needs at least one tree")
    first = trees[0]
    for tree in trees[1:]:
        _check_same(first, tree)
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _check_same(first: Any, other: Any) -> None:
    check_matching(first, other, reference_name="trees[0]", other_name="a member tree")


def unstack(tree: Any) -> list[Any]:
    """Split a tree with a leading member axis into one tree per member.

    Args:
        tree: a pytree whose leaves share a leading member axis.

    Returns:
        A list with one pytree per member.
    """
    n = size(tree, "tree")
    return [jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(n)]


def _member(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda leaf: leaf[i, ...], tree)  # 0-d arrays: checked as JAX sees them


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool) or value is None or callable(value) or isinstance(value, str):
        return False
    try:
        dtype = np.asarray(value).dtype
    except (TypeError, ValueError):
        return False
    return np.issubdtype(dtype, np.number)


def hyperparameters(factory: Factory, n: int, **values: Any) -> dict[str, Any]:
    """Per-member hyperparameters for ``n`` members, checked before any training.

    Each value is a number or 0-d array (shared by every member, broadcast to shape ``(n,)``),
    an array with leading axis ``n`` (one entry per member), or a per-leaf tree of those
    (broadcast leaf by leaf). Every member's values are checked by building
    ``factory(**member_values)``, so a bad value is reported before it is traced (traced
    values cannot be checked).

    Args:
        factory: the optimizer factory the values are for, e.g. ``adamjax.adamw``.
        n: the number of members.
        **values: the numeric arguments of ``factory`` that vary or are shared. Structural
            arguments (``nesterov``, ``mask``, dtypes) are not batched: pass them in the step.

    Returns:
        A dict of arrays (or per-leaf trees of arrays), each with leading axis ``n``: pass it
        through ``vmap`` and call ``factory(**hyperparameters)`` inside the step.

    Raises:
        TypeError: naming the argument, for a non-numeric value.
        ValueError: naming the argument, for a leading axis that is not ``n``; naming the
            argument and the first bad member, for a value out of range.
    """
    batched = _checked_hyperparameters(factory, n, values)
    return jax.tree.map(jnp.asarray, batched)


def _checked_hyperparameters(factory: Factory, n: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`hyperparameters`, leaving the arrays where they are: NumPy arrays (and numbers)
    stay NumPy arrays, JAX arrays stay JAX arrays. For callers that pass the result straight
    into ``jit``, which moves it to the device itself."""
    n = check_int("n", n, minimum=1)
    batched: dict[str, Any] = {}
    for name, value in values.items():

        def broadcast(path: Any, leaf: Any, name: str = name) -> Any:
            where = name + jax.tree_util.keystr(path)
            if not _is_numeric(leaf):
                raise TypeError(
                    f"{where} must be a number or an array to be given per member, got {leaf!r}"
                )
            array = leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)
            if array.ndim == 0 and isinstance(array, jax.Array):
                return jnp.broadcast_to(array, (n,))
            if array.ndim == 0:
                return np.full((n,), array)
            if array.shape[0] != n:
                raise ValueError(
                    f"{where} has leading axis {array.shape[0]} (shape {array.shape}); expected "
                    f"{n} members, or a scalar shared by every member"
                )
            return array

        batched[name] = jax.tree_util.tree_map_with_path(broadcast, value)
    try:
        with member_axis_allowed():
            factory(**batched)
    except (ValueError, TypeError) as error:
        for i in range(n):
            try:
                factory(**_member(batched, i))
            except (ValueError, TypeError) as member_error:
                raise type(member_error)(f"member {i}: {member_error}") from error
        raise
    return batched


def init(
    optimizer: GradientTransformation | Factory,
    params: Params,
    hyperparameters: Mapping[str, Any] | None = None,
) -> Any:
    """Optimizer state for params with a leading member axis: one state per member, stacked.

    ``init(optimizer, params)`` is ``jax.jit(jax.vmap(optimizer.init))(params)``. With
    ``hyperparameters`` (from :func:`hyperparameters`), ``optimizer`` is the factory and member
    ``i`` is initialised by ``optimizer(**hyperparameters[i]).init(params[i])``; this matters
    for hyperparameters that shape the state, such as Adagrad's
    ``initial_accumulator_value``.

    Args:
        optimizer: a transform, or with ``hyperparameters`` the factory that builds one from
            keyword arguments (``adamjax.adam``, say).
        params: params with a leading member axis on every leaf.
        hyperparameters: per-member keyword arguments for ``optimizer``, as
            :func:`hyperparameters` gives them, or ``None``.

    Returns:
        The optimizer state of every member, stacked on a leading axis.

    Raises:
        ValueError: naming the path of a leaf without the common member axis, or if the
            hyperparameters do not have as many members as the params.
    """
    n = size(params)
    if hyperparameters is None:
        init_fn = getattr(optimizer, "init", None)
        if not callable(init_fn):
            raise TypeError(
                "init() without hyperparameters takes a transform such as adamjax.adam(1e-3); "
                "to build each member's optimizer from its hyperparameters, pass them too"
            )
        return _vmapped(init_fn, params)
    if not callable(optimizer) or isinstance(optimizer, GradientTransformation):
        raise TypeError(
            "init() with hyperparameters takes the optimizer factory (e.g. adamjax.adamw), "
            f"got {type(optimizer).__name__}"
        )
    if hyperparameters:
        members_hp = size(dict(hyperparameters), "hyperparameters")
        if members_hp != n:
            raise ValueError(f"hyperparameters have {members_hp} members, but params have {n}")
    return _vmapped_factory_init(optimizer, params, dict(hyperparameters))


@functools.partial(jax.jit, static_argnums=0)
def _vmapped(fn: Callable[[Any], Any], batch: Any) -> Any:
    """``jax.vmap(fn)(batch)`` as one compiled call, cached for the same ``fn``."""
    return jax.vmap(fn)(batch)


@functools.partial(jax.jit, static_argnums=0)
def _vmapped_factory_init(factory: Factory, params: Params, hyperparameters: Any) -> Any:
    return jax.vmap(lambda p, h: factory(**h).init(p))(params, hyperparameters)
