r"""Reading moments stored by :func:`adamjax.blockwise_int8` back as float32 arrays.

A :class:`~adamjax._blockwise.QuantizedBlocks` leaf keeps codes and block scales but not the
block size, which its scales do not determine (a row of 2048 values in 8 blocks may be cut
every 256 or every 260 values): readers take the format the optimizer was built with. Value
:math:`i` of a row is decoded with the scale of block :math:`\lfloor i / B \rfloor`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._blockwise import BlockwiseInt8, QuantizedBlocks, decode, per_value, stand_ins

__all__ = ["dequantize", "dequantize_tree", "is_quantized", "quantized_paths"]


def is_quantized(x: Any) -> bool:
    """Whether ``x`` is one leaf stored in 8-bit blocks (a ``jax.tree`` ``is_leaf``)."""
    return isinstance(x, QuantizedBlocks)


def quantized_paths(tree: Any, name: str) -> list[str]:
    """The paths (``name`` prefixed, e.g. ``state.mu['w']``) of the 8-bit leaves of ``tree``."""
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=is_quantized)
    return [f"{name}{jax.tree_util.keystr(path)}" for path, x in leaves if is_quantized(x)]


def dequantize(stored: QuantizedBlocks, fmt: BlockwiseInt8) -> jax.Array:
    r"""The float32 values of one stored leaf: :math:`x_i = s_{\lfloor i/B \rfloor}\,
    \mathrm{decode}(c_i)` along the last axis, :math:`B` = ``fmt.block_size``.

    Args:
        stored: the codes and block scales of one leaf.
        fmt: the format that stored it.

    Returns:
        A float32 array of the codes' shape.
    """
    length = stored.codes.shape[-1]
    scales = per_value(stored.scale, length, fmt.block_size)
    return decode(stored.codes, scales, jnp.float32)


def dequantize_tree(tree: Any, fmt: Any, name: str) -> Any:
    """``tree`` with every 8-bit leaf replaced by its float32 values; other leaves as they are.

    Args:
        tree: a stored moment (``state.mu``), or ``None``.
        fmt: the :class:`~adamjax._blockwise.BlockwiseInt8` that stored it, or a dtype or
            ``None`` for a moment stored as arrays.
        name: the tree's name in messages (``state.mu``).

    Raises:
        TypeError: naming the first 8-bit leaf when ``fmt`` is not a ``BlockwiseInt8``, or a
            leaf stored otherwise than ``fmt`` stores it.
        ValueError: naming a leaf whose scales do not fit ``fmt``'s blocks.
    """
    if tree is None:
        return None
    if not isinstance(fmt, BlockwiseInt8):
        found = quantized_paths(tree, name)
        if found:
            raise TypeError(
                f"{found[0]} is stored in 8-bit blocks, whose block size the state does not "
                f"keep: pass the format the optimizer was built with ({name.split('.')[-1]}"
                "_dtype=adamjax.blockwise_int8(...))"
            )
        return tree
    stand_ins(tree, fmt, name)  # checks every leaf against fmt
    return jax.tree.map(
        lambda x: dequantize(x, fmt) if is_quantized(x) else x, tree, is_leaf=is_quantized
    )
