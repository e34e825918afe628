r"""The monitor: what people plot when they study Adam, recorded without changing the updates.

:func:`monitor` is a pass-through placed right after the moment estimator::

    moments(b1, b2) -> monitor(lr, eps) -> bias_correction() -> normalize(eps) -> scale(-lr)

It returns the :class:`adamjax.Moments` it receives untouched (the updates are bitwise those of
the chain without it) and keeps, per leaf, a handful of numbers about the bias-corrected
moments in its state (:class:`adamjax.DiagnosticsState`, whose properties give their formulas):
the bias-correction factors, the mean, minimum and maximum of the effective step size, the
mean signal-to-noise ratio and the root mean square of Adam's update. It works under ``jit``,
``vmap`` (one summary per member) and ``scan``; ``every=k`` records on every k-th step only.

The step size needs the learning rate and ``eps`` of the stages that follow the monitor. Given
to :func:`monitor`, they are the caller's to keep equal to the chain's; :func:`monitored` builds
the chain and its monitor from one set of hyperparameters, so that they cannot differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from adamjax._base import (
    GRADIENTS,
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    PerLeaf,
    PerLeafOrSchedule,
    check_transform,
    declare_stage,
    describe,
    stage_of,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import Mask, add_decayed_weights
from adamjax._diagnostics import bias_correction_factors
from adamjax._diagnostics_state import FACTORS, SUMMARIES, DiagnosticsState
from adamjax._estimates import Moments, expect_moments
from adamjax._normalize import normalize
from adamjax._placement import replicated_like, zero_count
from adamjax._rate import rate_at_step
from adamjax._scale import scale_by_learning_rate
from adamjax._summaries import summarize_leaf, summary_dtype
from adamjax._tree import check_float_leaves, check_matching, leafwise, map_leaves
from adamjax._validate import check_int, hyperparameter

__all__ = ["monitor", "monitored"]


def monitor(
    learning_rate: PerLeafOrSchedule = 1.0,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    *,
    corrected: bool = True,
    every: int = 1,
) -> GradientTransformation:
    r"""Record Adam's per-leaf diagnostics; the moments pass through unchanged.

    Place it right after the moment estimator, before :func:`adamjax.bias_correction`, and give
    it the same ``eps``, ``eps_root`` and learning rate as the chain (or let :func:`monitored`
    build the chain, which gives it them)::

        moments(b1, b2) -> monitor(lr, eps) -> bias_correction() -> normalize(eps) -> scale(-lr)

    It summarizes the moments as :func:`adamjax.normalize` will see them: bias-corrected as
    :func:`adamjax.bias_correction` corrects them (pass ``corrected=False`` for a chain without
    that stage, such as RMSProp). Moments that arrive already corrected (a monitor placed after
    ``bias_correction``, e.g. behind the paper's AMSGrad maximum) are summarized as they are.
    Each update stores, for every leaf, the bias-correction factors :math:`1 - b_1^t, 1 - b_2^t`,
    the mean, minimum and maximum of the effective step size :math:`\eta`, the mean of
    :math:`|\hat m_t| / \sqrt{\hat v_t}` and the RMS of the update :math:`\eta \hat m_t`
    before weight decay (the properties of :class:`adamjax.DiagnosticsState` give each
    formula); measure the final updates with :func:`adamjax.update_rms`.

    Cost: per entry a root, a reciprocal and a reciprocal root, and five reductions per leaf
    (``python -m benchmarks.overhead monitor``; figures on the docs' monitor page).
    ``every=k`` records on every k-th step only (:math:`t \equiv 0 \bmod k`), and the other
    steps cost almost nothing when the monitor sits before ``bias_correction`` (the moments it
    then receives are the estimator's state, already in memory). Under ``vmap`` the branch
    stays a branch: the summaries are computed on the steps where some member is due, and
    members that are not keep theirs. The summaries hold the last recorded step while
    ``count`` and the bias-correction factors follow every step.

    Args:
        learning_rate: :math:`\alpha`: a number, an array or tracer, a per-leaf tree, or a
            schedule, called like :func:`adamjax.scale_by_learning_rate` calls it (with the
            number of steps already taken). 1.0 records step sizes per unit learning rate.
        eps: the chain's ``eps``, ``>= 0``.
        eps_root: the chain's ``eps_root``, ``>= 0``.
        corrected: summarize bias-corrected moments (uncorrected ones are corrected for the
            summaries only). ``False`` summarizes uncorrected moments as they are.
        every: record the summaries on every ``every``-th step, a positive int.

    Returns:
        A transform taking and returning :class:`adamjax.Moments`, with state
        :class:`adamjax.DiagnosticsState`.

    Raises:
        ValueError: naming ``learning_rate``, ``eps``, ``eps_root`` or ``every`` when out of
            range; at ``update``, for moments whose tree is not the params', or already
            corrected moments with ``corrected=False``.
        TypeError: naming ``corrected`` when it is not a bool; at ``update``, for a gradient
            tree in place of moment estimates.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.chain(
        ...     adamjax.moments(0.9, 0.999),
        ...     adamjax.monitor(learning_rate=0.1, eps=1e-8),
        ...     adamjax.bias_correction(),
        ...     adamjax.normalize(1e-8),
        ...     adamjax.scale_by_learning_rate(0.1),
        ... )
        >>> params = {"w": jnp.zeros(3)}
        >>> state = opt.init(params)
        >>> _, state = opt.update({"w": jnp.array([1.0, 2.0, -3.0])}, state, params)
        >>> round(float(state[1].update_rms["w"]), 4)
        0.1
    """
    learning_rate = hyperparameter("learning_rate", learning_rate, schedule=True)
    eps = hyperparameter("eps", eps)
    eps_root = hyperparameter("eps_root", eps_root)
    if not isinstance(corrected, bool):
        raise TypeError(f"corrected must be a bool, got {corrected!r}")
    every = check_int("every", every, minimum=1)

    def update_fn(
        estimates: Moments, state: DiagnosticsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, DiagnosticsState]:
        del params
        _check_received(estimates, state, corrected)
        factors = bias_correction_factors(estimates)
        dtype = state.summaries.dtype
        step = (rate_at_step(learning_rate, estimates.count), eps, eps_root)

        def record(estimates: Moments) -> jax.Array:
            first, scales = _stored_moments(estimates, factors, corrected)
            return _summaries(first, estimates, scales, step, dtype)

        new_state = DiagnosticsState(
            count=estimates.count.astype(state.count.dtype),
            factors=jnp.stack([_per_leaf_row(tree, dtype) for tree in factors]),
            summaries=_record_when_due(every, estimates, record, state.summaries),
            treedef=state.treedef,
        )
        return estimates, new_state

    transform = GradientTransformation(_init_diagnostics, update_fn)
    return declare_stage(transform, takes=MOMENTS, emits=MOMENTS)


def _init_diagnostics(params: Params) -> DiagnosticsState:
    """Zeros: one column per leaf, in float64 if some leaf's summaries are, else float32."""
    check_float_leaves(params)
    leaves, treedef = jax.tree.flatten(params)
    dtypes = {summary_dtype(jnp.result_type(leaf)) for leaf in leaves}
    dtype = jnp.dtype(jnp.float64) if jnp.dtype(jnp.float64) in dtypes else jnp.dtype(jnp.float32)
    device = replicated_like(params)
    return DiagnosticsState(
        count=zero_count(params),
        factors=jnp.zeros([len(FACTORS), len(leaves)], dtype, device=device),
        summaries=jnp.zeros([len(SUMMARIES), len(leaves)], dtype, device=device),
        treedef=treedef,
    )


def _check_received(estimates: Any, state: DiagnosticsState, corrected: bool) -> None:
    """Refuse what the monitor cannot summarize, before anything is computed.

    Raises:
        TypeError: for a gradient tree in place of moment estimates.
        ValueError: for moments whose tree is not the params', or moments already corrected
            when the monitor was told they would not be.
    """
    expect_moments(estimates, "monitor")
    placeholder = jax.tree.unflatten(state.treedef, [0] * state.treedef.num_leaves)
    check_matching(placeholder, estimates.nu, other_name="moments", check_shapes=False)
    if estimates.corrected and not corrected:
        raise ValueError(
            "monitor(corrected=False) received moments that are already corrected: "
            "place it before bias_correction() or drop corrected=False"
        )


def _stored_moments(
    estimates: Moments, factors: tuple[Any, Any], corrected: bool
) -> tuple[Any, tuple[Any, Any]]:
    r"""The first moment to summarize and the scalars :math:`s_1, s_2` that correct it and
    :math:`v`: :math:`\hat m = s_1 m, \hat v = s_2 v`.

    Each scalar is :math:`1 / (1 - b^t)` (per leaf) where :func:`adamjax.bias_correction`
    would correct that moment, and 1 where it would not: moments already corrected (or not to
    be), no first moment, a running sum or an infinity norm. Nesterov's look-ahead is not a
    multiple of the stored moment, so it is corrected as an array instead.
    """
    if not corrected or estimates.corrected:
        return estimates.first_moment(), (1.0, 1.0)
    factors1, factors2 = factors
    scale2 = map_leaves(lambda c: 1 / c, factors2) if estimates.is_moving_average else 1.0
    if estimates.nesterov:
        return bias_correction().update(estimates, EmptyState())[0].mu, (1.0, scale2)
    scale1 = map_leaves(lambda c: 1 / c, factors1) if estimates.b1 is not None else 1.0
    return estimates.first_moment(), (scale1, scale2)


def _summaries(
    first: Any, estimates: Moments, scales: tuple[Any, Any], step: tuple[Any, ...], dtype: Any
) -> jax.Array:
    """The ``(5, leaves)`` summaries of every leaf (:func:`~adamjax._summaries.summarize_leaf`).

    Args:
        first: the first moment to summarize.
        estimates: the moments as received.
        scales: per-leaf trees (or numbers) :math:`s_1, s_2` correcting them.
        step: ``(learning_rate, eps, eps_root)``, numbers or per-leaf trees.
        dtype: the dtype of the state's summaries.
    """
    nu, root = estimates.nu, estimates.takes_root
    names = ("scale1", "scale2", "learning_rate", "eps", "eps_root")
    values = [leafwise(x, nu, name) for x, name in zip((*scales, *step), names, strict=True)]
    columns = map_leaves(
        lambda m, v, s1, s2, *step: summarize_leaf(m, v, (s1, s2), step, root=root, dtype=dtype),
        first,
        nu,
        *values,
    )
    leaves = jax.tree.leaves(columns)
    if not leaves:
        return jnp.zeros([len(SUMMARIES), 0], dtype)
    return jnp.stack(leaves, axis=-1)


def _per_leaf_row(tree: Any, dtype: Any) -> jax.Array:
    """One scalar per leaf of ``tree``, stacked in leaf order."""
    values = [x.astype(dtype) for x in jax.tree.leaves(tree)]
    return jnp.stack(values) if values else jnp.zeros([0], dtype)


@custom_vmap
def _any_member(due: jax.Array) -> jax.Array:
    """``due`` itself; under ``vmap``, whether it holds for any member (an unbatched value).

    ``jax.lax.cond`` on a per-member predicate becomes a select that runs both branches on every
    step. Branching on "any member is due" instead keeps a real branch under ``vmap``, so the
    steps on which no member records cost nothing there either.
    """
    return due


@_any_member.def_vmap
def _any_member_vmap(axis_size: int, in_batched: Any, due: jax.Array) -> tuple[jax.Array, bool]:
    del axis_size
    (batched,) = in_batched
    return (jnp.any(due, axis=0) if batched else due), False


def _record_when_due(
    every: int,
    estimates: Moments,
    record: Callable[[Moments], jax.Array],
    previous: jax.Array,
) -> jax.Array:
    r"""``record(estimates)`` on steps :math:`t \equiv 0 \bmod` ``every``, else ``previous``.

    The branch is a ``jax.lax.cond`` on "some member is due" (:func:`_any_member`), inside which
    members that are not due keep ``previous``.
    """
    if every == 1:
        return record(estimates)
    due = jnp.remainder(estimates.count, every) == jnp.zeros([], estimates.count.dtype)

    def record_due(estimates: Moments) -> jax.Array:
        return jnp.where(due, record(estimates), previous)

    return jax.lax.cond(_any_member(due), record_due, lambda _: previous, estimates)


def monitored(
    estimator: GradientTransformation,
    learning_rate: PerLeafOrSchedule = 1e-3,
    eps: PerLeaf = 1e-8,
    eps_root: PerLeaf = 0.0,
    *,
    corrected: bool = True,
    weight_decay: PerLeafOrSchedule | None = None,
    mask: Mask = None,
    every: int = 1,
) -> GradientTransformation:
    r"""An optimizer built around a moment estimator, with a :func:`monitor` that uses its
    hyperparameters.

    ``learning_rate``, ``eps`` and ``eps_root`` are given once, and both the monitor and the
    stages that use them are built from them::

        chain(estimator, monitor(learning_rate, eps, eps_root, corrected=, every=),
              [bias_correction()], normalize(eps, eps_root),
              [add_decayed_weights(weight_decay, mask)], scale_by_learning_rate(learning_rate))

    so the monitor's step size :math:`\eta = \alpha / (\sqrt{\hat v + \epsilon_{root}} +
    \epsilon)` is the one the updates use. The updates are bitwise those of the same chain
    without the monitor: ``monitored(moments(b1, b2), lr, eps)`` updates as
    ``adamjax.adam(lr, b1, b2, eps)``, with ``weight_decay`` as ``adamjax.adamw``, and
    ``monitored(infinity_moments(b1, b2, eps), lr, eps=0.0)`` as ``adamjax.adamax``. The
    monitor's state is the chain's second, ``state[1]``.

    Args:
        estimator: a transform taking gradients and emitting :class:`adamjax.Moments`:
            :func:`adamjax.moments`, :func:`adamjax.infinity_moments`, or a chain of one and
            ``Moments -> Moments`` stages such as :func:`adamjax.max_second_moment`.
        learning_rate: :math:`\alpha`, or a schedule of the steps already taken.
        eps: added to the root, ``>= 0``.
        eps_root: added under the root, ``>= 0``.
        corrected: bias-correct the moments (:func:`adamjax.bias_correction` follows the
            monitor); ``False`` for a second moment without bias (RMSProp, Adagrad).
        weight_decay: ``None`` (no decay), or the decoupled weight decay :math:`\lambda` of
            :func:`adamjax.add_decayed_weights`, added after ``normalize``.
        mask: which leaves to decay, as :func:`adamjax.add_decayed_weights` takes it.
        every: record the summaries on every ``every``-th step, a positive int.

    Returns:
        A :class:`adamjax.GradientTransformation` whose state is a tuple with the monitor's
        :class:`adamjax.DiagnosticsState` at index 1.

    Raises:
        TypeError: naming ``estimator`` when it does not take gradients and emit moment
            estimates (a whole optimizer, say, whose own learning rate the monitor cannot
            read); naming ``corrected`` when it is not a bool.
        ValueError: naming ``learning_rate``, ``eps``, ``eps_root``, ``weight_decay`` or
            ``every`` when out of range, or ``mask`` when it is given without
            ``weight_decay``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.monitored(adamjax.moments(0.9, 0.999), learning_rate=0.1)
        >>> params = {"w": jnp.zeros(3)}
        >>> _, state = opt.update({"w": jnp.array([1.0, 2.0, -3.0])}, opt.init(params), params)
        >>> round(float(state[1].update_rms["w"]), 4)
        0.1
    """
    check_transform(estimator, "estimator", whole=False)
    if stage_of(estimator) != (GRADIENTS, MOMENTS):
        raise TypeError(
            f"estimator must take gradients and emit moment estimates, got {describe(estimator)}"
            ": pass the moment estimator (moments(b1, b2), say), and monitored() builds "
            "normalize and the learning rate from its own eps and learning_rate"
        )
    if mask is not None and weight_decay is None:
        raise ValueError("mask selects the leaves to decay: give weight_decay with it")
    watch = monitor(learning_rate, eps, eps_root, corrected=corrected, every=every)
    correction = [bias_correction()] if corrected else []
    decay = [] if weight_decay is None else [add_decayed_weights(weight_decay, mask)]
    return chain(
        estimator,
        watch,
        *correction,
        normalize(eps, eps_root),
        *decay,
        scale_by_learning_rate(learning_rate),
    )
