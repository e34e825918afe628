r"""Complex parameters as pairs of real numbers, the way ``torch.optim`` treats them.

adamjax's own transforms take a complex parameter as one number per entry: the second moment
of :math:`g = a + ib` is :math:`v \leftarrow b_2 v + (1 - b_2)\,|g|^2` with
:math:`|g|^2 = a^2 + b^2` (optax's rule). ``torch.optim``'s Adam, AdamW and NAdam view a complex
tensor as a real one with a trailing axis of 2 (``torch.view_as_real``) and optimize the real and
imaginary parts as separate coordinates, each with its own second moment:

.. math::
    v^{re} \leftarrow b_2 v^{re} + (1 - b_2)\,a^2, \qquad
    v^{im} \leftarrow b_2 v^{im} + (1 - b_2)\,b^2 .

:func:`real_view` runs any transform under that second reading.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from adamjax._base import (
    GradientTransformation,
    Params,
    Transform,
    Updates,
    call_update,
    check_transform,
)
from adamjax._estimates import expect_gradients
from adamjax._tree import check_matching, map_leaves

__all__ = ["real_view"]


def _is_complex(leaf: Any) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.complexfloating)


def _as_real(leaf: Any) -> Any:
    """A complex array as a real one with a trailing axis ``(re, im)``; real leaves unchanged."""
    if not _is_complex(leaf):
        return leaf
    return jnp.stack([jnp.real(leaf), jnp.imag(leaf)], axis=-1)


def _as_complex(update: jax.Array, grad: Any) -> jax.Array:
    """Undo :func:`_as_real` for the leaves whose gradient is complex."""
    if not _is_complex(grad):
        return update
    return jax.lax.complex(update[..., 0], update[..., 1]).astype(jnp.result_type(grad))


def _check_complex_agrees(params: Params, grads: Updates) -> None:
    """Raise ``TypeError`` where a gradient is complex and its param real, or the reverse."""
    param_leaves = dict(jax.tree_util.tree_leaves_with_path(params))
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        param = param_leaves[path]
        if _is_complex(grad) != _is_complex(param):
            where = jax.tree_util.keystr(path)
            raise TypeError(
                f"grads{where} has dtype {jnp.result_type(grad)}, but params{where} has dtype "
                f"{jnp.result_type(param)}: a complex param needs a complex gradient and a real "
                "param a real one"
            )


def real_view(inner: Transform) -> GradientTransformation:
    r"""Run ``inner`` on complex leaves viewed as real arrays with a trailing axis of 2.

    Each complex leaf :math:`z = x + iy` of the params and gradients is handed to ``inner`` as
    the real array ``stack([x, y], axis=-1)`` (``torch.view_as_real``), and the real updates
    ``inner`` returns for it are turned back into complex ones. ``inner`` therefore treats the
    real and imaginary parts as separate coordinates: an Adam keeps one second moment for each,
    as ``torch.optim.Adam`` does. Real leaves pass through untouched, so for real params the
    state is exactly ``inner``'s; for complex ones it is ``inner``'s state of the real view
    (real arrays, shape ``(*shape, 2)``).

    A per-leaf hyperparameter array given for a complex leaf must broadcast against the view
    (give it a trailing axis of length 1); numbers and scalars work unchanged.

    Args:
        inner: a transform from gradients to updates (no moment estimates in or out).

    Returns:
        A transform from gradients to updates whose state is ``inner``'s state of the view.

    Raises:
        TypeError: when built, if ``inner`` is not a whole transform; at ``update``, naming the
            path where a gradient is complex and its param real, or the reverse.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> from adamjax._real_view import real_view
        >>> opt = real_view(adamjax.adam(0.1))
        >>> z = jnp.array([1.0 + 2.0j])
        >>> g = jnp.array([3.0 + 0.001j])
        >>> updates, state = opt.update(g, opt.init(z), z)
        >>> jnp.round(updates, 3)  # each part moves by -lr * sign on the first step
        Array([-0.1-0.1j], dtype=complex64)
        >>> state[0].nu.shape  # one second moment for the real part, one for the imaginary
        (1, 2)
        >>> native, _ = adamjax.adam(0.1).update(g, adamjax.adam(0.1).init(z), z)
        >>> jnp.round(native, 3)  # -lr * g / |g|: the small imaginary part barely moves
        Array([-0.1-0.j], dtype=complex64)
    """
    check_transform(inner, "real_view() inner")

    def init_fn(params: Params) -> Any:
        return inner.init(map_leaves(_as_real, params))

    def update_fn(
        updates: Updates, state: Any, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, Any]:
        expect_gradients(updates, "real_view")
        viewed_params = None
        if params is not None:
            check_matching(params, updates, other_name="grads")
            _check_complex_agrees(params, updates)
            viewed_params = map_leaves(_as_real, params)
        viewed_updates = map_leaves(_as_real, updates)
        new_updates, state = call_update(inner, viewed_updates, state, viewed_params, extra_args)
        return map_leaves(_as_complex, new_updates, updates), state

    return GradientTransformation(init_fn, update_fn)
