r"""8-bit blockwise moments (Dettmers et al., 2022), a format for ``mu_dtype`` / ``nu_dtype``:
blocks of ``block_size`` values along a leaf's last axis, each with one float32 scale :math:`s`
and one byte per value, a tiny float relative to :math:`s`:

.. math::
    x = \mathrm{sign}(c)\, s\, 2^{e} (1 + j/8), \qquad |c| = 8 (e + E) + j + 1,

:math:`c = 0` for 0; int8 codes with :math:`E = 15` for :math:`m`, uint8 with :math:`E = 31`
for :math:`v`. As :math:`|m_{t-1}| \le s_{t-1}`, the new scale needs no pass over the new moment,
:math:`|b\, m_{t-1} + (1 - b)\, g_t| \le s_t = b\, s_{t-1} + (1 - b) \max |g_t|`
(:math:`\max g_t^2` for :math:`v`): decoding, updating and encoding are one elementwise pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.core import Tracer
from jax.sharding import NamedSharding, PartitionSpec

from adamjax._placement import leaf_sharding
from adamjax._tree import cast_hyperparameter, compute_dtype, one_minus
from adamjax._validate import check_dtype, check_int

__all__ = [
    "BlockwiseInt8",
    "QuantizedBlocks",
    "blockwise_int8",
    "check_storage",
    "decode",
    "dither",
    "encode",
    "encode_factor",
    "moving_average",
    "moving_average_square",
    "running_max",
    "stand_ins",
    "zeros_like_params",
]

MANTISSA_BITS = 3  # each code is s * 2**e * (1 + j / 8), j = 0..7
FIRST_BINADES = 15  # int8 codes of m: sign and 121 values from s * 2**-15 to s
SECOND_BINADES = 31  # uint8 codes of v: 249 values from s * 2**-31 to s


class QuantizedBlocks(NamedTuple):
    """One leaf of a moment stored by :func:`blockwise_int8`."""

    codes: jax.Array  # int8 (first moment) or uint8 (second moment), the param's shape
    scale: jax.Array  # float32, shape[:-1] + (blocks,): each block's s, its largest value


@dataclass(frozen=True)
class BlockwiseInt8:
    """The format :func:`blockwise_int8` describes: a value for ``mu_dtype`` / ``nu_dtype``."""

    block_size: int = 256
    min_size: int = 4096

    def quantizes(self, shape: tuple[int, ...]) -> bool:
        """Whether a leaf of ``shape`` is stored in 8 bits (else float32)."""
        return len(shape) > 0 and math.prod(shape) >= max(self.min_size, 1)

    def blocks(self, length: int) -> int:
        """Blocks in a row of ``length`` values: ``ceil(length / block_size)``."""
        return -(-length // self.block_size)


def blockwise_int8(block_size: int = 256, min_size: int = 4096) -> BlockwiseInt8:
    """8-bit blockwise storage for the moments (``mu_dtype=`` / ``nu_dtype=``).

    Each run of ``block_size`` values along a leaf's last axis is stored as 8-bit codes with
    one float32 scale (docs/memory.md: the format, its error, its cost). The stages after the
    moments receive float32 (or wider) moments: only the stored state is quantized.

    Args:
        block_size: values per block along the last axis, ``>= 1``.
        min_size: leaves with fewer values (and scalars) are stored in float32, ``>= 0``.

    Returns:
        A frozen, hashable :class:`BlockwiseInt8`.

    Raises:
        TypeError: naming ``block_size`` or ``min_size`` when it is not an int.
        ValueError: naming ``block_size`` or ``min_size`` when it is out of range.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> int8 = adamjax.blockwise_int8()
        >>> opt = adamjax.adam(1e-3, mu_dtype=int8, nu_dtype=int8)
        >>> state = opt.init({"w": jnp.zeros((64, 256))})
        >>> state[0].mu["w"].codes.dtype, state[0].mu["w"].scale.shape
        (dtype('int8'), (64, 1))
    """
    block_size = check_int("block_size", block_size, minimum=1)
    min_size = check_int("min_size", min_size, minimum=0)
    return BlockwiseInt8(block_size=block_size, min_size=min_size)


def check_storage(name: str, storage: Any, *, complex_ok: bool = True) -> Any:
    """A moment's storage: a :class:`BlockwiseInt8` as it is, else a dtype ``check_dtype`` takes.

    Raises:
        TypeError: naming ``name``, for a dtype that cannot hold a moment.
    """
    if isinstance(storage, BlockwiseInt8):
        return storage
    return check_dtype(name, storage, complex_ok=complex_ok)


def _scale_placement(param: Any, fmt: BlockwiseInt8, where: str) -> Any:
    """The param's sharding for its scales, when it is a mesh's (None for an uncommitted param).

    Raises:
        ValueError: naming ``where``, for a last axis sharded in pieces of partial blocks.
    """
    if isinstance(param, Tracer):
        typeof = getattr(jax, "typeof", None)
        sharding = getattr(typeof(param), "sharding", None) if typeof else None
        if not isinstance(sharding, NamedSharding) or sharding.mesh.empty:
            return None
    else:
        sharding = leaf_sharding(param) if getattr(param, "committed", True) else None
        if not isinstance(sharding, NamedSharding):
            return sharding if sharding is not None and sharding.is_fully_replicated else None
    spec = tuple(sharding.spec) + (None,) * (param.ndim - len(sharding.spec))
    last = spec[-1]
    names = () if last is None else (last if isinstance(last, tuple) else (last,))
    pieces = math.prod(sharding.mesh.shape[name] for name in names)
    if pieces > 1 and param.shape[-1] % (pieces * fmt.block_size):
        raise ValueError(
            f"{where} is sharded along its last axis into {pieces} pieces of "
            f"{param.shape[-1] / pieces:g} values: blockwise_int8 needs pieces that are a "
            f"multiple of block_size={fmt.block_size}"
        )
    return NamedSharding(sharding.mesh, PartitionSpec(*spec))


def zeros(param: Any, fmt: BlockwiseInt8, *, signed: bool, where: str = "params") -> Any:
    """The zero moment of ``param`` in ``fmt``: :class:`QuantizedBlocks` (codes ``zeros_like``
    the param, scales with its ``PartitionSpec``) or float32 zeros.

    Raises:
        TypeError: naming ``where`` for a complex param.
        ValueError: naming ``where`` for a last axis sharded across blocks.
    """
    if jnp.issubdtype(param.dtype, jnp.complexfloating):
        raise TypeError(
            f"{where} is {param.dtype}: blockwise_int8 stores the moments of real params only; "
            "optimize the real and imaginary parts as real leaves"
        )
    if not fmt.quantizes(param.shape):
        return jnp.zeros_like(param, dtype=jnp.float32)
    codes = jnp.zeros_like(param, dtype=jnp.int8 if signed else jnp.uint8)
    shape = (*param.shape[:-1], fmt.blocks(param.shape[-1]))
    placement = _scale_placement(param, fmt, where)
    return QuantizedBlocks(codes, jnp.zeros(shape, jnp.float32, device=placement))


def zeros_like_params(params: Any, fmt: BlockwiseInt8, *, signed: bool) -> Any:
    """:func:`zeros` of every leaf of ``params``: int8 codes when ``signed``, else uint8."""

    def zero(path: Any, param: Any) -> Any:
        where = f"params{jax.tree_util.keystr(path)}"
        return zeros(jnp.asarray(param), fmt, signed=signed, where=where)

    return jax.tree_util.tree_map_with_path(zero, params)


def _stand_in(stored: Any, fmt: Any, where: str) -> Any:
    """What a stored leaf stands for, for checks: a float32 ``ShapeDtypeStruct`` of the param's
    shape for :class:`QuantizedBlocks`, the leaf itself otherwise.

    Raises:
        TypeError: naming ``where``, for a leaf stored otherwise than ``fmt`` stores it.
        ValueError: naming ``where``, when the scales do not fit ``fmt``'s blocks.
    """
    if not isinstance(stored, QuantizedBlocks):
        if isinstance(fmt, BlockwiseInt8) and fmt.quantizes(jnp.shape(stored)):
            raise TypeError(
                f"{where} is a {jnp.result_type(stored)} array, but {fmt!r} stores it in 8-bit "
                "blocks: pass the state this optimizer's init returned"
            )
        return stored
    if not isinstance(fmt, BlockwiseInt8):
        raise TypeError(
            f"{where} is stored in 8-bit blocks, but the optimizer stores it in "
            f"{'its param dtype' if fmt is None else fmt}: build it with blockwise_int8()"
        )
    shape = jnp.shape(stored.codes)
    expected = (*shape[:-1], fmt.blocks(shape[-1]))
    if jnp.shape(stored.scale) != expected:
        raise ValueError(
            f"{where}.scale has shape {jnp.shape(stored.scale)}, but blocks of "
            f"{fmt.block_size} along the last axis of {shape} need {expected}"
        )
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def stand_ins(tree: Any, fmt: Any, name: str) -> Any:
    """:func:`_stand_in` of every leaf of a stored moment ``tree`` (``name``: ``state.mu``)."""

    def stand_in(path: Any, stored: Any) -> Any:
        return _stand_in(stored, fmt, f"{name}{jax.tree_util.keystr(path)}")

    blocks = lambda x: isinstance(x, QuantizedBlocks)  # noqa: E731
    return jax.tree_util.tree_map_with_path(stand_in, tree, is_leaf=blocks)


def _blocked(x: jax.Array, block_size: int) -> jax.Array:
    """``(..., n) -> (..., blocks, block_size)``, zero-padded at the end of each row."""
    pad = -x.shape[-1] % block_size
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], -1, block_size)


def _largest(blocks: jax.Array) -> jax.Array:
    """``max |x|`` over the last axis as ``max(max(x), -min(x))``: plain reductions, which XLA's
    CPU backend runs at memory speed (one of ``|x|`` about ten times slower)."""
    largest = jnp.max(blocks, axis=-1)
    if jnp.issubdtype(blocks.dtype, jnp.unsignedinteger):
        return largest
    return jnp.maximum(largest, -jnp.min(blocks, axis=-1))


def block_max(x: jax.Array, block_size: int) -> jax.Array:
    r"""The largest :math:`|x|` of each block, ``(..., blocks)``.

    A row of :math:`n` values is first reduced in pieces of :math:`d = \gcd(n, B)` (a plain
    reshape, no padding), then the pieces of each block: a padded row would be copied first.
    """
    length = x.shape[-1]
    piece = math.gcd(length, block_size)
    pieces = _largest(x.reshape(*x.shape[:-1], length // piece, piece))
    if piece == block_size:
        return pieces
    return _largest(_blocked(pieces, block_size // piece))


def per_value(blocks: jax.Array, length: int, block_size: int) -> jax.Array:
    """A block's value for each of its values: ``(..., blocks) -> (..., length)``."""
    spread = jnp.broadcast_to(blocks[..., None], (*blocks.shape, block_size))
    return spread.reshape(*blocks.shape[:-1], -1)[..., :length]


def encode_factor(scale: jax.Array) -> jax.Array:
    """:math:`1/s`, the factor :func:`encode` multiplies :math:`|x|` by (0 where :math:`s = 0`:
    a block of zeros)."""
    positive = scale > 0
    return jnp.where(positive, 1.0 / jnp.where(positive, scale, 1.0), 0.0)


def _offset(signed: bool) -> int:
    """:math:`q_0`: code :math:`k > 0` is the float32 whose bits ``>> 20`` are :math:`q_0 + k`."""
    return ((127 - (FIRST_BINADES if signed else SECOND_BINADES)) << MANTISSA_BITS) - 1


def decode(codes: jax.Array, factor: jax.Array, dtype: Any) -> jax.Array:
    r"""Values of codes, in ``dtype``: :math:`s\,\mathrm{sign}(c)\,2^{e}(1 + f/8)` for
    :math:`|c| = 8 (e + E) + f + 1`, and 0 for :math:`c = 0`.

    Args:
        codes: int8 (first moment, :math:`E = 15`) or uint8 (second moment, :math:`E = 31`).
        factor: :math:`s` for each code's block, shaped like ``codes``.
        dtype: the dtype of the values returned.
    """
    signed = codes.dtype == jnp.int8
    size = jnp.abs(codes.astype(jnp.int32))
    bits = (size + _offset(signed)) << (23 - MANTISSA_BITS)
    relative = jnp.where(size > 0, jax.lax.bitcast_convert_type(bits, jnp.float32), 0.0)
    value = relative.astype(dtype) * factor.astype(dtype)
    return jnp.where(codes < 0, -value, value) if signed else value


def dither(shape: tuple[int, ...], step: Any) -> jax.Array:
    r"""Random bits, one uint32 per value: one multiply-xorshift round (of Wellons'
    ``lowbias32``) on the value's index and the step count; :func:`encode` uses the high bits,
    the well mixed ones. A resumed run repeats the uninterrupted one bit for bit."""
    index = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    key = jnp.asarray(step).astype(jnp.uint32) * jnp.uint32(0x9E3779B9)
    h = (index ^ key) * jnp.uint32(0x7FEB352D)
    return h ^ (h >> jnp.uint32(15))


def encode(
    x: jax.Array, factor: jax.Array, signed: bool, noise: jax.Array | None = None
) -> jax.Array:
    r"""Codes of values: :math:`r = \min(|x|/s, 1)` rounded to three mantissa bits, in value.

    :math:`r = 2^e (1 + f)` with :math:`f \in [0, 1)` becomes :math:`2^e(1 + j/8)` with
    :math:`j = \lfloor 8f + u \rfloor` (a carry moves to the next binade): :math:`u = 1/2`
    rounds to the nearest value, :math:`u \sim U[0, 1)` (``noise``) rounds stochastically,
    unbiased in value. Both are an integer addition to the bits of :math:`r`. Values below
    :math:`2^{-E}` get code 0, except that a positive second moment gets at least code 1, so
    that it never decodes to zero where the first moment might not.

    Args:
        x: values with :math:`|x| \le s` (larger ones are clipped).
        factor: :math:`1/s` for each value's block (:func:`encode_factor`), shaped like ``x``;
            0 for a block of zeros.
        signed: int8 codes of a first moment, else uint8 codes of a second moment.
        noise: random uint32 bits for each value (:func:`dither`), or ``None`` for nearest.

    Returns:
        The codes, shaped like ``x``.
    """
    shift = 23 - MANTISSA_BITS
    relative = jnp.minimum(jnp.abs(x) * factor.astype(x.dtype), 1.0).astype(jnp.float32)
    bits = jax.lax.bitcast_convert_type(relative, jnp.int32)
    if noise is None:
        bits = bits + (1 << (shift - 1))
    else:
        bits = bits + (noise >> jnp.uint32(32 - shift)).astype(jnp.int32)
    code = jnp.maximum((bits >> shift) - _offset(signed), 0)
    if signed:
        return jnp.where(x < 0, -code, code).astype(jnp.int8)
    return jnp.maximum(code, (relative > 0).astype(jnp.int32)).astype(jnp.uint8)


def _bound(scale: jax.Array, gmax: jax.Array, decay: Any, dtype: Any) -> jax.Array:
    r"""A bound on each block of :math:`b\,x + (1 - b)\,y` from bounds :math:`S, G` of
    :math:`|x|, |y|`, in float32: :math:`bS + (1 - b)G` for one decay, :math:`\max(S, G)` for
    one per value."""
    if jnp.ndim(decay) > 0:
        return jnp.maximum(scale, gmax).astype(jnp.float32)
    bound = cast_hyperparameter(decay, dtype) * scale + one_minus(decay, dtype) * gmax
    return bound.astype(jnp.float32)


def _average(
    new: jax.Array,
    newmax: jax.Array,
    stored: QuantizedBlocks,
    decay: Any,
    fmt: BlockwiseInt8,
    step: Any,
) -> tuple[jax.Array, QuantizedBlocks]:
    r"""``decay * old + (1 - decay) * new`` with ``old`` decoded from ``stored``; ``new`` is
    :math:`g` or :math:`g^2` in the compute dtype, ``newmax`` its block maxima. Returns the
    average and its stored form, scaled by :func:`_bound` (computed before the average) and
    rounded stochastically with the :func:`dither` of ``step``."""
    dtype, length = new.dtype, new.shape[-1]
    bound = _bound(stored.scale.astype(dtype), newmax.astype(dtype), decay, dtype)
    signed = stored.codes.dtype == jnp.int8
    spread = partial(per_value, length=length, block_size=fmt.block_size)
    old = decode(stored.codes, spread(stored.scale), dtype)
    if jnp.ndim(decay) > 0:  # one decay per value
        decay = jnp.broadcast_to(jnp.asarray(decay), new.shape)
    average = cast_hyperparameter(decay, dtype) * old + one_minus(decay, dtype) * new
    noise = None if signed else dither(new.shape, step)  # unbiased where it adds up
    codes = encode(average, spread(encode_factor(bound)), signed, noise)
    return average, QuantizedBlocks(codes, bound)


def moving_average(
    g: jax.Array, stored: QuantizedBlocks, decay: Any, fmt: BlockwiseInt8, step: Any
) -> tuple[jax.Array, QuantizedBlocks]:
    r""":math:`m_t = b\,m_{t-1} + (1 - b)\,g_t` with :math:`m_{t-1}` decoded from ``stored``.

    Returns:
        :math:`m_t` in ``g``'s compute dtype (float32 or wider) and its int8 blocks, scaled by
        :math:`b\,s + (1 - b) \max|g|`.
    """
    g = g.astype(compute_dtype(g.dtype))
    return _average(g, block_max(g, fmt.block_size), stored, decay, fmt, step)


def moving_average_square(
    g: jax.Array, stored: QuantizedBlocks, decay: Any, fmt: BlockwiseInt8, step: Any
) -> tuple[jax.Array, QuantizedBlocks]:
    r""":math:`v_t = b\,v_{t-1} + (1 - b)\,g_t^2` with :math:`v_{t-1}` decoded from ``stored``.

    Returns:
        :math:`v_t` in ``g``'s compute dtype (float32 or wider) and its uint8 blocks, scaled
        by :math:`b\,s + (1 - b) (\max|g|)^2`.
    """
    g = g.astype(compute_dtype(g.dtype))
    gmax = block_max(g, fmt.block_size)
    return _average(g * g, gmax * gmax, stored, decay, fmt, step)


def running_max(
    v: jax.Array, stored: QuantizedBlocks, fmt: BlockwiseInt8
) -> tuple[jax.Array, QuantizedBlocks]:
    r""":math:`\bar v_t = \max(\bar v_{t-1}, v_t)` with :math:`\bar v_{t-1}` decoded from
    ``stored`` (AMSGrad), re-encoded (to the nearest value) on each block's own maximum."""
    dtype, length = compute_dtype(v.dtype), v.shape[-1]
    spread = partial(per_value, length=length, block_size=fmt.block_size)
    old = decode(stored.codes, spread(stored.scale), dtype)
    new = jnp.maximum(old, v.astype(dtype))
    scale = block_max(new, fmt.block_size).astype(jnp.float32)
    codes = encode(new, spread(encode_factor(scale)), False)
    return new, QuantizedBlocks(codes, scale)
