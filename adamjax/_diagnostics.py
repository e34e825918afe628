r"""Diagnostics on demand: Adam's per-parameter quantities, computed from moment estimates.

With bias-corrected moments :math:`\hat m_t, \hat v_t`, Adam's update is
:math:`-\eta_t \hat m_t` with the effective step size and signal-to-noise ratio

.. math::
    \eta_t = \frac{\alpha}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}, \qquad
    \rho_t = \frac{\hat m_t}{\sqrt{\hat v_t}} .

:func:`effective_step_size`, :func:`signal_to_noise` and :func:`bias_correction_factors` take
the :class:`adamjax.Moments` a moment estimator emits; :func:`moments_from_state` rebuilds them
from an estimator's state; :func:`update_rms` measures any tree of updates. The transform that
records per-leaf summaries of the same quantities at every step is :func:`adamjax.monitor`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from adamjax._arraymath import abs_square
from adamjax._base import EmptyState, PerLeaf, Updates
from adamjax._blockwise import BlockwiseInt8, check_storage
from adamjax._blockwise_read import dequantize_tree
from adamjax._correction import bias_correction, one_minus_power
from adamjax._estimates import Moments, expect_moments
from adamjax._moments import InfinityNormState, MomentsState, SumOfSquaresState
from adamjax._summaries import mean_or_zero, signal_to_noise_ratio, step_size, summary_dtype
from adamjax._tree import leafwise, map_leaves
from adamjax._validate import hyperparameter

__all__ = [
    "bias_correction_factors",
    "effective_step_size",
    "moments_from_state",
    "signal_to_noise",
    "update_rms",
]


def _factor(decay: Any, t: jax.Array, dtype: Any) -> jax.Array:
    """:math:`1 - b^t` in ``dtype``; 1 where there is no decay (nothing to correct)."""
    if decay is None:
        return jnp.ones([], dtype)
    return one_minus_power(decay, t, dtype).astype(dtype)


def bias_correction_factors(estimates: Moments) -> tuple[Any, Any]:
    r"""The denominators of the bias correction at the moments' step: per leaf
    :math:`(1 - b_1^t,\ 1 - b_2^t)`.

    Adam's step-size factor is :math:`\sqrt{1 - b_2^t} / (1 - b_1^t)`, which starts at
    :math:`\sqrt{1 - b_2} / (1 - b_1)` (about 0.32 for the defaults) and tends to 1. A factor is
    1 where there is nothing to correct: no first moment (RMSProp), or a running sum (Adagrad)
    or infinity norm (Adamax) as second moment. Computed in float32 or wider as
    :func:`adamjax.bias_correction` does, whether or not ``estimates`` are corrected yet.

    Args:
        estimates: :class:`adamjax.Moments` from a moment estimator.

    Returns:
        Two trees with the structure of the params, holding one scalar per leaf.

    Raises:
        TypeError: if ``estimates`` are not :class:`adamjax.Moments`.
    """
    expect_moments(estimates, "bias_correction_factors")
    t = estimates.count
    b1 = leafwise(estimates.b1, estimates.mu, "b1") if estimates.b1 is not None else None
    b2 = leafwise(estimates.b2, estimates.nu, "b2") if estimates.is_moving_average else None

    def factors(tree: Any, decays: Any) -> Any:
        if decays is None:
            return map_leaves(lambda x: _factor(None, t, summary_dtype(x.dtype)), tree)
        return map_leaves(lambda x, b: _factor(b, t, summary_dtype(x.dtype)), tree, decays)

    return factors(estimates.mu, b1), factors(estimates.nu, b2)


def effective_step_size(
    estimates: Moments,
    learning_rate: PerLeaf = 1.0,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
) -> Updates:
    r"""Per-parameter effective step size :math:`\alpha / (\sqrt{v + \epsilon_{root}} + \epsilon)`.

    With bias-corrected moments this is what Adam multiplies :math:`\hat m_t` by: the update is
    :math:`-\eta_t \hat m_t`. For an infinity norm (Adamax) it is :math:`\alpha / (u_t +
    \epsilon)`. Pass the same ``eps`` and ``eps_root`` as the chain's :func:`adamjax.normalize`.

    Args:
        estimates: :class:`adamjax.Moments` as :func:`adamjax.normalize` receives them (after
            :func:`adamjax.bias_correction` for Adam).
        learning_rate: :math:`\alpha`: a number, an array or a per-leaf tree (1.0 gives the
            step size per unit learning rate).
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.

    Returns:
        A tree of arrays with the params' structure and shapes (float32 or wider).

    Raises:
        TypeError: if ``estimates`` are not :class:`adamjax.Moments`.
        ValueError: naming ``learning_rate``, ``eps`` or ``eps_root`` where a per-leaf tree
            does not match the params.
    """
    expect_moments(estimates, "effective_step_size")
    root = estimates.takes_root
    return map_leaves(
        lambda v, lr, e, er: step_size(v, lr, e, er, root=root),
        estimates.nu,
        leafwise(learning_rate, estimates.nu, "learning_rate"),
        leafwise(eps, estimates.nu, "eps"),
        leafwise(eps_root, estimates.nu, "eps_root"),
    )


def signal_to_noise(estimates: Moments) -> Updates:
    r"""Per-parameter signal-to-noise ratio :math:`m / \sqrt{v}` (zero where :math:`v = 0`).

    With bias-corrected moments this is :math:`\hat m_t / \sqrt{\hat v_t}`, Adam's update
    without ``eps`` and learning rate: near :math:`\pm 1` where the gradient keeps its sign from
    step to step, near 0 where it is mostly noise (:math:`\hat v` then measures the noise's
    variance while :math:`\hat m` averages it away). For an infinity norm it is :math:`m / u`.

    Args:
        estimates: :class:`adamjax.Moments` (after :func:`adamjax.bias_correction` for Adam).

    Returns:
        A tree of arrays with the params' structure and shapes (complex for complex params).

    Raises:
        TypeError: if ``estimates`` are not :class:`adamjax.Moments`.
    """
    expect_moments(estimates, "signal_to_noise")
    root = estimates.takes_root
    return map_leaves(
        lambda m, v: signal_to_noise_ratio(m, v, root=root), estimates.first_moment(), estimates.nu
    )


def update_rms(updates: Updates) -> Updates:
    r"""Root mean square of each leaf of ``updates``: :math:`\sqrt{\mathrm{mean}(|u|^2)}`.

    Args:
        updates: a tree of arrays, e.g. what an optimizer's ``update`` returned.

    Returns:
        A tree with the same structure holding one scalar per leaf (float32 or wider; 0 for an
        empty leaf).

    Raises:
        TypeError: if ``updates`` are moment estimates rather than updates.
    """
    if isinstance(updates, Moments):
        raise TypeError(
            "update_rms() takes a tree of updates but received moment estimates: use "
            "effective_step_size() or signal_to_noise() on Moments"
        )

    def rms(u: jax.Array) -> jax.Array:
        u = jnp.asarray(u)
        dtype = summary_dtype(u.dtype)
        return jnp.sqrt(mean_or_zero(abs_square(u).astype(dtype), dtype))

    return map_leaves(rms, updates)


# --- rebuilding Moments from an estimator's state, one reader per state type ------------------


@functools.singledispatch
def _read_state(state: Any, b1: Any, b2: Any) -> Moments:
    """The :class:`Moments` a state holds; this fallback refuses a state of no known estimator."""
    del b1, b2
    raise TypeError(
        f"moments_from_state() takes the MomentsState of moments(), got {type(state).__name__}"
    )


@_read_state.register
def _read_moving_averages(state: MomentsState, b1: Any, b2: Any) -> Moments:
    """The moving averages of :func:`adamjax.moments`: :math:`m_t` (or none) and :math:`v_t`."""
    b1 = hyperparameter("b1", b1, upper=1.0, optional=True)
    b2 = hyperparameter("b2", b2, upper=1.0)
    if (b1 is None) != (state.mu is None):
        raise ValueError(
            "b1 must be None exactly when the state keeps no first moment "
            f"(b1={b1!r}, state.mu is {'None' if state.mu is None else 'present'})"
        )
    mu = state.nu if state.mu is None else state.mu
    return Moments(mu=mu, nu=state.nu, grad=mu, b1=b1, b2=b2, count=state.count)


def _refuse(what: str) -> Any:
    """A reader that refuses a state whose second moment is not a mean of squares."""

    def refuse(state: Any, b1: Any, b2: Any) -> Moments:
        del b1, b2
        raise TypeError(
            f"moments_from_state() takes the MomentsState of moments(); a "
            f"{type(state).__name__} holds {what}, not a moving average of |g|^2, so the step "
            "size and signal-to-noise it would report are not Adam's. Place monitor() after "
            "its moment estimator instead."
        )

    return refuse


_read_state.register(InfinityNormState, _refuse("an infinity norm (Adamax)"))
_read_state.register(SumOfSquaresState, _refuse("a running sum of squares (Adagrad)"))


def moments_from_state(
    state: MomentsState,
    b1: PerLeaf | None = 0.9,
    b2: PerLeaf = 0.999,
    *,
    corrected: bool = True,
    mu_dtype: DTypeLike | BlockwiseInt8 | None = None,
    nu_dtype: DTypeLike | BlockwiseInt8 | None = None,
) -> Moments:
    r"""The :class:`adamjax.Moments` of the last step, rebuilt from :func:`adamjax.moments`'s state.

    The state keeps :math:`m_t, v_t` and :math:`t` but not the decay rates, nor the block size
    of moments stored by :func:`adamjax.blockwise_int8`: pass the ones the optimizer was built
    with. 8-bit moments are decoded to float32, :math:`x_i = s_{\lfloor i/B \rfloor}
    \mathrm{decode}(c_i)`: the values the optimizer's next step starts from. With
    ``corrected=True`` the result is bias-corrected (:math:`\hat m_t, \hat v_t`), ready for
    :func:`effective_step_size` and :func:`signal_to_noise`. Nesterov's look-ahead (NAdam)
    needs the last gradient, which the state does not keep, so it is not applied.

    Each estimator's state has a type of its own, and the state is read by its type: only a
    :class:`adamjax.MomentsState` holds moving averages of :math:`g` and :math:`|g|^2`.

    Args:
        state: a :class:`adamjax.MomentsState` after at least one update (``opt_state[0]`` of
            :func:`adamjax.adam`).
        b1: first-moment decay the state was built with (``None`` if it keeps no first moment).
        b2: second-moment decay.
        corrected: apply :func:`adamjax.bias_correction`.
        mu_dtype: the optimizer's ``mu_dtype``; needed only when it is
            :func:`adamjax.blockwise_int8` (a dtype changes nothing: arrays keep theirs).
        nu_dtype: the optimizer's ``nu_dtype``, likewise.

    Returns:
        :class:`adamjax.Moments`.

    Raises:
        TypeError: naming the state's type, for any state but a :class:`adamjax.MomentsState`
            (an :class:`adamjax.InfinityNormState` or :class:`adamjax.SumOfSquaresState` holds
            no mean of squares); naming the first leaf stored in 8-bit blocks when
            ``mu_dtype`` or ``nu_dtype`` is not the :func:`adamjax.blockwise_int8` format that
            stored it.
        ValueError: naming ``b1`` or ``b2`` when out of range, or ``b1`` when it is ``None``
            and the state keeps a first moment (or the reverse); naming a leaf whose block
            scales do not fit the format passed.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.adam(0.1)
        >>> params = jnp.zeros(2)
        >>> _, state = opt.update(jnp.array([1.0, -2.0]), opt.init(params), params)
        >>> estimates = adamjax.moments_from_state(state[0])
        >>> [round(float(x), 4) for x in adamjax.signal_to_noise(estimates)]
        [1.0, -1.0]
    """
    mu_dtype = check_storage("mu_dtype", mu_dtype)
    nu_dtype = check_storage("nu_dtype", nu_dtype, complex_ok=False)
    if isinstance(state, MomentsState):
        mu = dequantize_tree(state.mu, mu_dtype, "state.mu")
        state = state._replace(mu=mu, nu=dequantize_tree(state.nu, nu_dtype, "state.nu"))
    estimates = _read_state(state, b1, b2)
    if not corrected:
        return estimates
    return bias_correction().update(estimates, EmptyState())[0]
