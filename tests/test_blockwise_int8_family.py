"""8-bit blockwise moments (``adamjax.blockwise_int8``) in the newer family: lamb, stable_adamw,
adam_atan2 and ademamix's ``nu_dtype`` store their moments in 8-bit blocks and track the float32
run; ademamix's slow average, adopt's momentum and Adam-mini's moments refuse the format naming
the argument and the moment."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax._blockwise import QuantizedBlocks

LR = 1e-3
INT8 = adamjax.blockwise_int8(min_size=0)
BOTH = {"mu_dtype": INT8, "nu_dtype": INT8}
REFUSED: Any = INT8  # passed where the signature says a dtype: refused at run time

# alias, the 8-bit arguments, how many moments are stored in 8-bit blocks
TAKING = [
    (adamjax.lamb, BOTH, 2),
    (adamjax.stable_adamw, BOTH, 2),
    (adamjax.adam_atan2, BOTH, 2),
    (adamjax.ademamix, {"nu_dtype": INT8}, 1),
]


def quantized(state: Any) -> list[QuantizedBlocks]:
    blocks = lambda x: isinstance(x, QuantizedBlocks)  # noqa: E731
    return [x for x in jax.tree.leaves(state, is_leaf=blocks) if blocks(x)]


def gradients(shape: tuple[int, ...], steps: int, seed: int) -> list[jax.Array]:
    """Noisy gradients with a steady part, magnitudes spread over decades across the leaf."""
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.normal(0.0, 1.5, shape))
    steady = rng.standard_normal(shape)
    return [
        jnp.asarray((rng.standard_normal(shape) + 0.5 * steady) * spread, jnp.float32)
        for _ in range(steps)
    ]


def parameter_gap(alias: Any, kwargs: dict[str, Any], steps: int) -> tuple[float, float]:
    """Mean |p8 - p32| and mean |p32 - p0| after ``steps`` steps of the alias with float32 and
    with 8-bit moments on the same gradients."""
    shape = (4, 512)
    p0 = jnp.asarray(np.random.default_rng(4).standard_normal(shape), jnp.float32)
    exact, small = alias(LR), alias(LR, **kwargs)
    p32, p8, s32, s8 = p0, p0, exact.init(p0), small.init(p0)
    step32, step8 = jax.jit(exact.update), jax.jit(small.update)
    for g in gradients(shape, steps, seed=5):
        u32, s32 = step32(g, s32, p32)
        u8, s8 = step8(g, s8, p8)
        p32, p8 = adamjax.apply_updates(p32, u32), adamjax.apply_updates(p8, u8)
    return float(jnp.mean(jnp.abs(p8 - p32))), float(jnp.mean(jnp.abs(p32 - p0)))


@pytest.mark.parametrize(("alias", "kwargs", "count"), TAKING)
def test_aliases_store_their_moments_in_8_bit_blocks(alias: Any, kwargs: Any, count: int) -> None:
    """On a 1000 x 1000 leaf each 8-bit moment takes 1 + 4 * 4 / 1000 bytes per parameter (a
    byte per value, a float32 scale per block of 256), against 4 in float32."""
    params = jnp.zeros((1000, 1000), jnp.float32)
    state = alias(LR, **{k: adamjax.blockwise_int8() for k in kwargs}).init(params)
    stored = quantized(state)
    assert len(stored) == count
    assert sum(x.codes.nbytes + x.scale.nbytes for x in stored) == count * (10**6 + 4 * 4 * 1000)
    assert {x.codes.dtype for x in stored} <= {jnp.dtype(jnp.int8), jnp.dtype(jnp.uint8)}
    float_bytes = sum(x.nbytes for x in jax.tree.leaves(alias(LR).init(params)))
    eight_bit = sum(x.nbytes for x in jax.tree.leaves(state))
    assert float_bytes - eight_bit == count * (4 * 10**6 - 10**6 - 16 * 1000)


def test_lamb_with_8_bit_moments_tracks_float32() -> None:
    """10 steps: the 8-bit run's params stay within 5% of how far the float32 run moved."""
    gap, moved = parameter_gap(adamjax.lamb, BOTH, 10)
    assert 0 < gap < 0.05 * moved  # measured: 0.026 of it


@pytest.mark.slow
@pytest.mark.parametrize(("alias", "kwargs", "count"), TAKING)
def test_aliases_with_8_bit_moments_track_float32(alias: Any, kwargs: Any, count: int) -> None:
    """30 steps: the 8-bit run's params stay within 5% of how far the float32 run moved."""
    del count
    gap, moved = parameter_gap(alias, kwargs, 30)
    assert 0 < gap < 0.05 * moved, (alias.__name__, gap, moved)  # measured: 0.023 to 0.036


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: adamjax.ademamix(LR, mu_dtype=REFUSED), r"mu_dtype=.*slow average m\^\(2\)"),
        (lambda: adamjax.slow_momentum(mu_dtype=REFUSED), r"mu_dtype=.*slow average"),
        (lambda: adamjax.adopt(LR, mu_dtype=REFUSED), r"mu_dtype=.*momentum m of ema_momentum"),
        (lambda: adamjax.ema_momentum(mu_dtype=REFUSED), r"mu_dtype=.*cannot be stored in 8 bits"),
        (lambda: adamjax.adam_mini(LR, mu_dtype=REFUSED), r"mu_dtype=.*m of mini_moments"),
        (lambda: adamjax.adam_mini(LR, nu_dtype=REFUSED), r"nu_dtype=.*per-block v"),
        (lambda: adamjax.lion(LR, mu_dtype=REFUSED), r"mu_dtype must be a floating-point dtype"),
    ],
)
def test_moments_kept_by_their_own_blocks_refuse_the_format(build: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        build()


@pytest.mark.parametrize(
    ("alias", "accepts"),
    [
        (adamjax.lamb, True),
        (adamjax.stable_adamw, True),
        (adamjax.adam_atan2, True),
        (adamjax.ademamix, False),
        (adamjax.adopt, False),
        (adamjax.adam_mini, False),
    ],
)
def test_docstrings_say_what_mu_dtype_accepts(alias: Any, accepts: bool) -> None:
    doc = alias.__doc__ or ""
    entry = doc[doc.index("mu_dtype:") :].split("\n        ", 1)[0]
    text = " ".join(doc[doc.index("mu_dtype:") :].split()[:40])  # the Args line and a bit more
    assert "blockwise_int8" in text
    assert ("not :func:`adamjax.blockwise_int8`" in text) != accepts, entry
