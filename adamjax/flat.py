r"""Flat parameters: a whole parameter tree kept in a few contiguous buffers.

Every adamjax transform maps its rule over the leaves of the params, so a step costs a fixed
price per leaf on top of the bytes it moves: on CPU each leaf is a few compiled loops, a few
buffers handed to and from the compiled program, and compile time. A model with thousands of
small leaves spends most of its optimizer step on that price. :func:`ravel` packs the leaves
into one 1-D buffer per dtype (and per group, see below) and returns a :class:`FlatParams`, a
pytree whose leaves are those buffers. Every transform then runs unchanged on a handful of
large arrays, and the model reads its tree through :meth:`FlatParams.unravel`, which slices
the buffers (the gradient of those slices is one concatenation)::

    flat_params = adamjax.flat.ravel(params)
    optimizer = adamjax.adam(1e-3)
    opt_state = optimizer.init(flat_params)  # moments are FlatParams too

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(flat_params, opt_state, x, y):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(p.unravel(), x, y))(flat_params)
        updates, opt_state = optimizer.update(grads, opt_state, flat_params)
        return adamjax.apply_updates(flat_params, updates), opt_state, loss

This is the JAX counterpart of torch's multi-tensor ("foreach") and flat-parameter paths. The
update is elementwise, so it is the same arithmetic on the same numbers as the tree step; the
results agree to float32 rounding (the compiler may vectorize one long loop and several short
ones differently, which can move the last bit).

On CPU the optimizer step on 2000 leaves of 1000 parameters takes 0.03x the time of the tree
step and compiles in 0.2 s instead of 30 s. In a whole training step the slices that feed the
model and the concatenation that assembles the gradient are per-leaf loops of their own: the
step is still faster, but it compiles slower than on the tree (``docs/performance.md``).

Per-leaf hyperparameters and masks name leaves of the original tree, which a flat buffer no
longer has. :meth:`FlatParams.per_buffer` translates them: a value shared by every leaf of a
buffer becomes that buffer's value (no cost); a buffer whose leaves disagree gets a per-element
array of the values (one extra read per element and step). Give ``ravel`` the same labels as
``groups`` to keep every buffer uniform::

    decay = jax.tree.map(lambda p: p.ndim > 1, params)         # spare biases and norms
    flat_params = adamjax.flat.ravel(params, groups=decay)      # one buffer per label and dtype
    optimizer = adamjax.adamw(1e-3, mask=flat_params.per_buffer(decay))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamjax._base import Params
from adamjax._tree import check_matching, compute_dtype
from adamjax._validate import is_function

__all__ = ["FlatParams", "Layout", "ravel"]


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where one leaf lives: ``buffer[offset : offset + size].reshape(shape)``."""

    path: str
    buffer: int
    offset: int
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the leaves of a tree sit in the buffers of a :class:`FlatParams` (static metadata).

    Attributes:
        treedef: structure of the original tree.
        names: one name per buffer: the dtype (``"float32"``), or ``"<label>/<dtype>"`` when
            leaves were grouped.
        dtypes: dtype of each buffer.
        sizes: number of elements of each buffer.
        slots: for each leaf of the original tree, in leaf order, its path, buffer, offset and
            shape.
    """

    treedef: Any
    names: tuple[str, ...]
    dtypes: tuple[np.dtype, ...]
    sizes: tuple[int, ...]
    slots: tuple[_Slot, ...]

    def ravel(self, tree: Params) -> FlatParams:
        """Pack ``tree`` (with the structure, shapes and dtypes this layout was made from).

        Use it to flatten a second tree the same way, e.g. gradients computed on the tree.

        Raises:
            ValueError: naming the first path whose structure, shape or dtype differs.
        """
        check_matching(self.abstract(), tree, reference_name="layout", other_name="tree")
        leaves = self.treedef.flatten_up_to(tree)
        for slot, leaf in zip(self.slots, leaves, strict=True):
            dtype = jnp.result_type(leaf)
            if dtype != self.dtypes[slot.buffer]:
                raise ValueError(
                    f"tree{slot.path} has dtype {dtype}, but the layout holds "
                    f"{self.dtypes[slot.buffer]} there"
                )
        parts: list[list[jax.Array]] = [[] for _ in self.names]
        for slot, leaf in zip(self.slots, leaves, strict=True):
            parts[slot.buffer].append(jnp.ravel(jnp.asarray(leaf, self.dtypes[slot.buffer])))
        buffers = tuple(
            p[0] if len(p) == 1 else jnp.concatenate(p) for p in parts
        )  # one leaf: a reshape, no copy
        return FlatParams(buffers, self)

    def abstract(self) -> Params:
        """The original tree with a :class:`jax.ShapeDtypeStruct` for each leaf."""
        return self.treedef.unflatten(
            [jax.ShapeDtypeStruct(s.shape, self.dtypes[s.buffer]) for s in self.slots]
        )


def _flatten_with_keys(flat: FlatParams) -> tuple[tuple[Any, ...], Layout]:
    keys = (jax.tree_util.DictKey(name) for name in flat.layout.names)
    return tuple(zip(keys, flat.buffers, strict=True)), flat.layout


def _flatten(flat: FlatParams) -> tuple[tuple[Any, ...], Layout]:
    return flat.buffers, flat.layout


def _unflatten(layout: Layout, buffers: Any) -> FlatParams:
    return FlatParams(tuple(buffers), layout)


class FlatParams:
    """A parameter tree stored as a few 1-D buffers (one per dtype and group).

    A pytree whose leaves are the buffers, so any transform's ``init``, ``update`` and
    :func:`adamjax.apply_updates` take it in place of the tree, and the optimizer state comes out
    as ``FlatParams`` with the same layout. Build one with :func:`ravel`. Iterating over it
    gives the buffers (so it is also the ``Iterable`` of arrays that :data:`chex.ArrayTree`, the
    type of the transforms' params, describes).

    Attributes:
        buffers: the buffers, in the order of ``layout.names``.
        layout: the static :class:`Layout` mapping leaves to buffers.
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers: tuple[Any, ...], layout: Layout) -> None:
        self.buffers = buffers
        self.layout = layout

    def __iter__(self) -> Iterator[Any]:
        return iter(self.buffers)

    def unravel(self) -> Params:
        """The original tree, each leaf a slice of its buffer reshaped to the leaf's shape.

        Under ``jit`` the slices are views the compiler fuses into their consumers, and the
        gradient of ``unravel`` with respect to the buffers is one concatenation per buffer.
        """
        pieces: list[list[jax.Array]] = []
        for index, buffer in enumerate(self.buffers):
            sizes = [math.prod(s.shape) for s in self.layout.slots if s.buffer == index]
            pieces.append(list(jax.lax.split(buffer, sizes)) if len(sizes) > 1 else [buffer])
        cursor = [0] * len(self.buffers)
        leaves = []
        for slot in self.layout.slots:
            leaves.append(jnp.reshape(pieces[slot.buffer][cursor[slot.buffer]], slot.shape))
            cursor[slot.buffer] += 1
        return self.layout.treedef.unflatten(leaves)

    def per_buffer(self, values: Any, name: str = "values") -> Any:
        """Turn a per-leaf tree of hyperparameters (or a mask) into one value per buffer.

        Args:
            values: a tree with the structure of the original params holding a scalar per leaf
                (number, bool, 0-d array or tracer), or a single value shared by all leaves
                (returned unchanged).
            name: what ``values`` is, for error messages.

        Returns:
            ``FlatParams`` with the same layout holding, for each buffer, the value its leaves
            share, or, where they differ, a 1-D array of each element's value (bool if all
            values are bools, else float32 or wider).

        Raises:
            ValueError: if ``values`` does not have the structure of the params, or holds a
                value that is not a scalar.
        """
        if jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(values)):
            return values
        check_matching(
            self.layout.abstract(), values, reference_name="params", other_name=name,
            check_shapes=False,
        )  # fmt: skip
        leaves = self.layout.treedef.flatten_up_to(values)
        grouped: list[list[tuple[_Slot, Any]]] = [[] for _ in self.buffers]
        for slot, value in zip(self.layout.slots, leaves, strict=True):
            if jnp.ndim(value) != 0:
                raise ValueError(
                    f"{name}{slot.path} has shape {jnp.shape(value)}; per_buffer() takes one "
                    "scalar per leaf"
                )
            grouped[slot.buffer].append((slot, value))
        return FlatParams(tuple(_buffer_value(entries) for entries in grouped), self.layout)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{n}: {d}[{s}]"
            for n, d, s in zip(
                self.layout.names, self.layout.dtypes, self.layout.sizes, strict=True
            )
        )
        return f"FlatParams({len(self.layout.slots)} leaves in {{{parts}}})"


jax.tree_util.register_pytree_with_keys(FlatParams, _flatten_with_keys, _unflatten, _flatten)


def _same_key(value: Any) -> Hashable:
    """A key equal for values known to be equal without running anything; else identity."""
    if isinstance(value, (bool, int, float, complex)):
        return (type(value), value)
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        try:
            array = np.asarray(value)
        except jax.errors.TracerArrayConversionError:  # a tracer: equal only to itself
            return ("id", id(value))
        return (array.dtype.str, array.item())
    return ("id", id(value))


def _buffer_value(entries: list[tuple[_Slot, Any]]) -> Any:
    values = [value for _, value in entries]
    if len({_same_key(v) for v in values}) == 1:
        return values[0]
    dtypes = [jnp.result_type(v) for v in values]
    all_bool = all(d == jnp.bool_ for d in dtypes)
    dtype = jnp.dtype(jnp.bool_) if all_bool else compute_dtype(*dtypes)
    return jnp.concatenate(
        [
            jnp.full((math.prod(slot.shape),), jnp.asarray(value).astype(dtype), dtype)
            for slot, value in entries
        ]
    )


def ravel(params: Params, groups: Any = None) -> FlatParams:
    """Pack a parameter tree into one 1-D buffer per dtype (and per group label).

    Leaves are laid out in tree order. Within a buffer every leaf keeps its dtype: nothing is
    cast, so mixed-precision trees (e.g. bfloat16 weights and float32 norms) get one buffer per
    dtype.

    Args:
        params: a pytree of arrays (``None`` leaves are kept as ``None``).
        groups: optional labels (strings, numbers or bools) with the structure of ``params``, or a
            callable ``params -> labels``. Leaves with the same label and dtype share a buffer,
            so hyperparameters or masks that are constant per label stay one value per buffer
            (see :meth:`FlatParams.per_buffer`).

    Returns:
        :class:`FlatParams`; ``.unravel()`` gives the tree back.

    Raises:
        ValueError: if ``groups`` does not have the structure of ``params``.
        TypeError: if a label is not a string, number or bool.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> flat = adamjax.flat.ravel({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
        >>> flat
        FlatParams(2 leaves in {float32: float32[9]})
        >>> flat.unravel()["w"].shape
        (2, 3)
    """
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    if groups is None:
        labels: list[Any] = [None] * len(leaves_with_paths)
    else:
        label_tree = groups(params) if is_function(groups) else groups
        check_matching(params, label_tree, other_name="groups", check_shapes=False)
        labels = treedef.flatten_up_to(label_tree)
        for (path, _), label in zip(leaves_with_paths, labels, strict=True):
            if not isinstance(label, (str, int, float, bool, np.bool_, np.number)):
                raise TypeError(
                    f"groups{jax.tree_util.keystr(path)} must be a string, number or bool label, "
                    f"got {label!r}"
                )
    names: list[str] = []
    dtypes: list[np.dtype] = []
    sizes: list[int] = []
    index: dict[tuple[Any, np.dtype], int] = {}
    slots = []
    for (path, leaf), label in zip(leaves_with_paths, labels, strict=True):
        dtype = jnp.dtype(jnp.result_type(leaf))
        key = (None if label is None else _label(label), dtype)
        if key not in index:
            index[key] = len(names)
            names.append(dtype.name if label is None else f"{label}/{dtype.name}")
            dtypes.append(dtype)
            sizes.append(0)
        buffer = index[key]
        shape = tuple(int(d) for d in jnp.shape(leaf))
        slots.append(_Slot(jax.tree_util.keystr(path), buffer, sizes[buffer], shape))
        sizes[buffer] += math.prod(shape)
    layout = Layout(treedef, tuple(names), tuple(dtypes), tuple(sizes), tuple(slots))
    return layout.ravel(params)


def _label(label: Any) -> tuple[type, Any]:
    """A label compared by type and value (``True`` and ``1`` stay apart; numpy ones unboxed)."""
    if isinstance(label, (np.bool_, np.number)):
        label = label.item()
    return (type(label), label)
