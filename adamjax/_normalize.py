r"""Normalization: turning moment estimates into an update.

.. math::
    u = \frac{m}{\sqrt{v + \epsilon_{root}} + \epsilon}

This is where ``eps`` lives. The paper, optax and torch add ``eps`` outside the root;
``eps_root`` adds it inside (``eps=0, eps_root=e`` gives :math:`m / \sqrt{v + e}`).
"""

from __future__ import annotations

from typing import Any

import jax

from adamjax._arraymath import denominator
from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    Updates,
    declare_stage,
    init_empty_state,
)
from adamjax._estimates import Moments, expect_moments
from adamjax._tree import compute_dtype, leafwise, map_leaves
from adamjax._validate import hyperparameter

__all__ = ["normalize"]


def normalize(eps: PerLeaf = 1e-8, eps_root: PerLeaf = 0.0) -> GradientTransformation:
    r"""Divide the first moment by the root of the second.

    .. math::
        u = \frac{m}{\sqrt{v + \epsilon_{root}} + \epsilon}

    For an infinity norm (:func:`adamjax.infinity_moments`) there is no root:
    :math:`u = m / (v + \epsilon)`. The division runs in float32 or wider and the update is
    returned in the gradient's dtype, so ``eps`` does not underflow for float16 params.

    Args:
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.

    Returns:
        A transform taking :class:`adamjax.Moments` and emitting updates.
    """
    eps = hyperparameter("eps", eps)
    eps_root = hyperparameter("eps_root", eps_root)

    def update_fn(
        estimates: Moments, state: EmptyState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, EmptyState]:
        del params
        expect_moments(estimates, "normalize")
        root = estimates.takes_root
        mu = estimates.first_moment()

        def divide(m: jax.Array, v: jax.Array, g: jax.Array, eps: Any, eps_root: Any) -> jax.Array:
            dtype = compute_dtype(m.dtype, v.dtype, g.dtype)
            d = denominator(v, eps, eps_root, root=root, dtype=dtype)
            return (m.astype(dtype) / d.astype(dtype)).astype(g.dtype)

        updates = map_leaves(
            divide,
            mu,
            estimates.nu,
            estimates.grad,
            leafwise(eps, mu, "eps"),
            leafwise(eps_root, mu, "eps_root"),
        )
        return updates, state

    return declare_stage(
        GradientTransformation(init_empty_state, update_fn), takes=MOMENTS, emits=GRADIENTS
    )
