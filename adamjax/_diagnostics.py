r"""Diagnostics: what people plot when they study Adam, recorded without changing the updates.

:func:`monitor` is a pass-through placed right after the moment estimator::

    moments(b1, b2) -> monitor(lr, eps) -> bias_correction() -> normalize(eps) -> scale(-lr)

It returns the :class:`adamjax.Moments` it receives untouched (the updates are bitwise those of
the chain without it) and keeps, per leaf, a handful of numbers about the bias-corrected
moments :math:`\hat m_t, \hat v_t` in its state (:class:`DiagnosticsState`): the
bias-correction factors :math:`1 - b_1^t, 1 - b_2^t`, the mean,
minimum and maximum of the effective step size

.. math::
    \eta_t = \frac{\alpha}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon},

the mean magnitude of the signal-to-noise ratio :math:`\hat m_t / \sqrt{\hat v_t}` and the root
mean square of Adam's update :math:`\eta_t \hat m_t`. It works under ``jit``, ``vmap`` (one
summary per member) and ``scan``; the state is three small arrays whatever the number of
leaves, and ``every=k`` records on every k-th step only.

The full per-parameter arrays are computed on demand, from :class:`adamjax.Moments`
(:func:`effective_step_size`, :func:`signal_to_noise`, :func:`bias_correction_factors`) or from
the state of :func:`adamjax.moments` (:func:`moments_from_state`); :func:`update_rms` measures
any tree of updates, for instance the final ones after weight decay.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from adamjax._base import (
    MOMENTS,
    EmptyState,
    GradientTransformation,
    Params,
    ScalarOrSchedule,
    Updates,
    declare_stage,
)
from adamjax._correction import bias_correction, one_minus_power
from adamjax._moments import (
    InfinityNormState,
    Moments,
    MomentsState,
    SumOfSquaresState,
    expect_moments,
)
from adamjax._placement import replicated_like, zero_count
from adamjax._scale import evaluate_schedule
from adamjax._tree import (
    cast_hyperparameter,
    check_float_leaves,
    check_matching,
    compute_dtype,
    leafwise,
    map_leaves,
    real_dtype,
)
from adamjax._validate import check_int, hyperparameter, is_function

__all__ = [
    "DiagnosticsState",
    "bias_correction_factors",
    "effective_step_size",
    "moments_from_state",
    "monitor",
    "signal_to_noise",
    "update_rms",
]


SUMMARIES = ("step_size_mean", "step_size_min", "step_size_max", "snr_mean", "update_rms")


@dataclasses.dataclass(frozen=True)
class DiagnosticsState:
    """State of :func:`monitor`: per-leaf summaries of the last recorded step.

    The values are kept stacked, one column per leaf of the params (in ``jax.tree.leaves``
    order), so that the state is three arrays whatever the number of leaves. Read them as trees
    with the structure of the params through the properties (``state.update_rms["w"]``) or
    :meth:`as_dict`. Under ``vmap`` or ``scan`` the arrays gain leading axes, and each per-leaf
    value carries them too.

    All values are float32, or float64 if some param is float64 (or complex128). Before the
    first update they are all zero.

    Attributes:
        count: shape ``(...)``, int32: :math:`t` of the moments last seen.
        factors: shape ``(..., 2, leaves)``: :math:`1 - b_1^t` and :math:`1 - b_2^t` per leaf.
        summaries: shape ``(..., 5, leaves)``: the rows named in ``SUMMARIES`` per leaf.
        treedef: the params' tree structure (static).
    """

    count: jax.Array
    factors: jax.Array
    summaries: jax.Array
    treedef: Any  # jax.tree_util.PyTreeDef

    def _tree(self, values: jax.Array, row: int) -> Any:
        columns = [values[..., row, j] for j in range(self.treedef.num_leaves)]
        return jax.tree.unflatten(self.treedef, columns)

    @property
    def bias_correction1(self) -> Any:
        """Per leaf :math:`1 - b_1^t` (1 if there is no first moment)."""
        return self._tree(self.factors, 0)

    @property
    def bias_correction2(self) -> Any:
        """Per leaf :math:`1 - b_2^t` (1 for a running sum or an infinity norm)."""
        return self._tree(self.factors, 1)

    @property
    def step_size_mean(self) -> Any:
        r"""Per leaf mean of :math:`\eta = \alpha / (\sqrt{\hat v + \epsilon_r} + \epsilon)`."""
        return self._tree(self.summaries, 0)

    @property
    def step_size_min(self) -> Any:
        r"""Per leaf minimum of :math:`\eta`."""
        return self._tree(self.summaries, 1)

    @property
    def step_size_max(self) -> Any:
        r"""Per leaf maximum of :math:`\eta`."""
        return self._tree(self.summaries, 2)

    @property
    def snr_mean(self) -> Any:
        r"""Per leaf mean of :math:`|\hat m| / \sqrt{\hat v}` (0 where :math:`\hat v = 0`)."""
        return self._tree(self.summaries, 3)

    @property
    def update_rms(self) -> Any:
        r"""Per leaf :math:`\sqrt{\mathrm{mean}(|\eta \hat m|^2)}`, the RMS before weight decay."""
        return self._tree(self.summaries, 4)

    def as_dict(self) -> dict[str, Any]:
        """Every recorded quantity as a tree with the params' structure, keyed by name."""
        names = ("bias_correction1", "bias_correction2", *SUMMARIES)
        return {name: getattr(self, name) for name in names}


jax.tree_util.register_dataclass(
    DiagnosticsState, data_fields=["count", "factors", "summaries"], meta_fields=["treedef"]
)


def _summary_dtype(dtype: Any) -> Any:
    return real_dtype(compute_dtype(dtype))


def _step_size(v: jax.Array, lr: Any, eps: Any, eps_root: Any, root: bool) -> jax.Array:
    """``lr / (sqrt(v + eps_root) + eps)`` (``lr / (v + eps)`` for an infinity norm)."""
    real = real_dtype(compute_dtype(v.dtype))
    v = v.astype(real)
    size = jnp.sqrt(v + cast_hyperparameter(eps_root, real)) if root else v
    return cast_hyperparameter(lr, real) / (size + cast_hyperparameter(eps, real))


def _snr(m: jax.Array, v: jax.Array, root: bool) -> jax.Array:
    """``m / sqrt(v)`` (``m / v`` for an infinity norm), zero where ``v`` is zero."""
    dtype = compute_dtype(m.dtype, v.dtype)
    real = real_dtype(dtype)
    v = v.astype(real)
    scale = jnp.sqrt(v) if root else v
    positive = scale > jnp.zeros([], real)
    safe = jnp.where(positive, scale, jnp.ones_like(scale))
    ratio = m.astype(dtype) / safe.astype(dtype)
    return jnp.where(positive, ratio, jnp.zeros_like(ratio))


def _mean(x: jax.Array, dtype: Any) -> jax.Array:
    if x.size == 0:
        return jnp.zeros([], dtype)
    return jnp.mean(x).astype(dtype)


def _factor(decay: Any, t: jax.Array, dtype: Any) -> jax.Array:
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
    """
    expect_moments(estimates, "bias_correction_factors")
    t = estimates.count
    b1 = leafwise(estimates.b1, estimates.mu, "b1") if estimates.b1 is not None else None
    b2 = leafwise(estimates.b2, estimates.nu, "b2") if estimates.b2 is not None else None
    mean_square = estimates.kind == "mean_square"

    def first(m: jax.Array, b: Any = None) -> jax.Array:
        return _factor(b, t, _summary_dtype(m.dtype))

    def second(v: jax.Array, b: Any = None) -> jax.Array:
        return _factor(b if mean_square else None, t, _summary_dtype(v.dtype))

    factors1 = (
        map_leaves(first, estimates.mu) if b1 is None else map_leaves(first, estimates.mu, b1)
    )
    factors2 = (
        map_leaves(second, estimates.nu) if b2 is None else map_leaves(second, estimates.nu, b2)
    )
    return factors1, factors2


def effective_step_size(
    estimates: Moments, learning_rate: Any = 1.0, eps: Any = 1e-8, eps_root: Any = 0.0
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
    """
    expect_moments(estimates, "effective_step_size")
    root = estimates.kind != "infinity_norm"
    return map_leaves(
        lambda v, lr, e, er: _step_size(v, lr, e, er, root),
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
    """
    expect_moments(estimates, "signal_to_noise")
    root = estimates.kind != "infinity_norm"
    return map_leaves(lambda m, v: _snr(m, v, root), estimates.first_moment(), estimates.nu)


def update_rms(updates: Updates) -> Updates:
    r"""Root mean square of each leaf of ``updates``: :math:`\sqrt{\mathrm{mean}(|u|^2)}`.

    Args:
        updates: a tree of arrays, e.g. what an optimizer's ``update`` returned.

    Returns:
        A tree with the same structure holding one scalar per leaf (float32 or wider; 0 for an
        empty leaf).
    """
    if isinstance(updates, Moments):
        raise TypeError(
            "update_rms() takes a tree of updates but received moment estimates: use "
            "effective_step_size() or signal_to_noise() on Moments"
        )

    def rms(u: jax.Array) -> jax.Array:
        u = jnp.asarray(u)
        dtype = _summary_dtype(u.dtype)
        x = u.astype(compute_dtype(u.dtype))
        square = (x * jnp.conj(x)).real if jnp.iscomplexobj(x) else x * x
        return jnp.sqrt(_mean(square.astype(dtype), dtype))

    return map_leaves(rms, updates)


def moments_from_state(
    state: MomentsState, b1: Any = 0.9, b2: Any = 0.999, *, corrected: bool = True
) -> Moments:
    r"""The :class:`adamjax.Moments` of the last step, rebuilt from :func:`adamjax.moments`'s state.

    The state keeps :math:`m_t, v_t` and :math:`t` but not the decay rates: pass the ones the
    optimizer was built with. With ``corrected=True`` the result is bias-corrected
    (:math:`\hat m_t, \hat v_t`), ready for :func:`effective_step_size` and
    :func:`signal_to_noise`. Nesterov's look-ahead (NAdam) needs the last gradient, which the
    state does not keep, so it is not applied.

    Args:
        state: a :class:`adamjax.MomentsState` after at least one update (``opt_state[0]`` of
            :func:`adamjax.adam`).
        b1: first-moment decay the state was built with (``None`` if it keeps no first moment).
        b2: second-moment decay.
        corrected: apply :func:`adamjax.bias_correction`.

    Returns:
        :class:`adamjax.Moments`.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.adam(0.1)
        >>> params = jnp.zeros(2)
        >>> _, state = opt.update(jnp.array([1.0, -2.0]), opt.init(params), params)
        >>> estimates = adamjax.moments_from_state(state[0])
        >>> [round(float(x), 4) for x in adamjax.signal_to_noise(estimates)]
        [1.0, -1.0]
    """
    if isinstance(state, (InfinityNormState, SumOfSquaresState)):
        what = (
            "an infinity norm (Adamax)"
            if isinstance(state, InfinityNormState)
            else ("a running sum of squares (Adagrad)")
        )
        raise TypeError(
            f"moments_from_state() takes the MomentsState of moments(); a "
            f"{type(state).__name__} holds {what}, not a moving average of |g|^2, so the step "
            "size and signal-to-noise it would report are not Adam's. Place monitor() after "
            "its moment estimator instead."
        )
    if not isinstance(state, MomentsState):
        raise TypeError(
            f"moments_from_state() takes the MomentsState of moments(), got {type(state).__name__}"
        )
    b1 = hyperparameter("b1", b1, upper=1.0, optional=True)
    b2 = hyperparameter("b2", b2, upper=1.0)
    if (b1 is None) != (state.mu is None):
        raise ValueError(
            "b1 must be None exactly when the state keeps no first moment "
            f"(b1={b1!r}, state.mu is {'None' if state.mu is None else 'present'})"
        )
    mu = state.nu if state.mu is None else state.mu
    estimates = Moments(mu=mu, nu=state.nu, grad=mu, b1=b1, b2=b2, count=state.count)
    if not corrected:
        return estimates
    return bias_correction().update(estimates, bias_correction().init(None))[0]


def _summary_dtype_of(params: Params) -> Any:
    """float64 if some leaf's summaries would be float64, else float32."""
    dtypes = [_summary_dtype(jnp.result_type(p)) for p in jax.tree.leaves(params)]
    return jnp.dtype(jnp.float64) if jnp.dtype(jnp.float64) in dtypes else jnp.dtype(jnp.float32)


def _summarize(
    m: jax.Array,
    v: jax.Array,
    scale1: Any,
    scale2: Any,
    lr: Any,
    eps: Any,
    eps_root: Any,
    root: bool,
    dtype: Any,
) -> jax.Array:
    r"""The five summaries of one leaf, in the order of ``SUMMARIES``, as a ``(5,)`` array.

    ``m, v`` are the moments as stored and ``scale1, scale2`` the scalars that correct them,
    :math:`\hat m = s_1 m, \hat v = s_2 v` (1 for moments already corrected). Scalars are
    applied after each reduction where the math allows it, so the reductions read the moments
    in place: :math:`\max \eta` and :math:`\min \eta` are the step size at :math:`s_2 \min v`
    and :math:`s_2 \max v` (it is monotone), and :math:`|\hat m| / \sqrt{\hat v} =
    s_1 s_2^{-1/2} |m| / \sqrt v`. Per entry that leaves one reciprocal
    :math:`r = 1 / (\sqrt{s_2 v + \epsilon_{root}} + \epsilon)`, giving the mean step size
    :math:`\alpha \bar r` and the update's RMS :math:`\alpha s_1 \sqrt{\overline{r^2 |m|^2}}`,
    and one reciprocal root.
    """
    if v.size == 0:
        return jnp.zeros([5], dtype)
    real = real_dtype(compute_dtype(m.dtype, v.dtype))
    v = v.astype(real)
    m = m.astype(compute_dtype(m.dtype))
    lr, eps, eps_root, scale1, scale2 = (
        cast_hyperparameter(x, real) for x in (lr, eps, eps_root, scale1, scale2)
    )

    def reciprocal(v: jax.Array) -> jax.Array:
        # 1 / (sqrt(s2 v + eps_root) + eps), written so that XLA does not share the root with
        # normalize()'s, which would make it keep the root of every entry in memory
        if not root:
            return 1 / (scale2 * v + eps)
        return 1 / (jnp.sqrt(scale2) * jnp.sqrt(v + eps_root / scale2) + eps)

    r = reciprocal(v)
    square = (m * jnp.conj(m)).real if jnp.iscomplexobj(m) else m * m
    positive = v > jnp.zeros([], real)
    safe = jnp.where(positive, v, jnp.ones_like(v))
    ratio = jnp.where(positive, jnp.abs(m) * (jax.lax.rsqrt(safe) if root else 1 / safe), 0)
    snr_scale = scale1 * (jax.lax.rsqrt(scale2) if root else 1 / scale2)
    values = (
        lr * jnp.mean(r),
        lr * reciprocal(jnp.max(v)),
        lr * reciprocal(jnp.min(v)),
        snr_scale * jnp.mean(ratio),
        lr * scale1 * jnp.sqrt(jnp.mean(r * r * square)),
    )
    return jnp.stack([x.astype(dtype) for x in values])


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


def monitor(
    learning_rate: ScalarOrSchedule = 1.0,
    eps: Any = 1e-8,
    eps_root: Any = 0.0,
    *,
    corrected: bool = True,
    every: int = 1,
) -> GradientTransformation:
    r"""Record Adam's per-leaf diagnostics; the moments pass through unchanged.

    Place it right after the moment estimator, before :func:`adamjax.bias_correction`, and give
    it the same ``eps``, ``eps_root`` and learning rate as the chain::

        moments(b1, b2) -> monitor(lr, eps) -> bias_correction() -> normalize(eps) -> scale(-lr)

    It summarizes the moments as :func:`adamjax.normalize` will see them: bias-corrected as
    :func:`adamjax.bias_correction` corrects them (pass ``corrected=False`` for a chain without
    that stage, such as RMSProp). Moments that arrive already corrected (a monitor placed after
    ``bias_correction``, e.g. behind the paper's AMSGrad maximum) are summarized as they are.
    Each update stores, for every leaf, with
    :math:`\eta = \alpha / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)`:

    .. math::
        1 - b_1^t,\quad 1 - b_2^t,\quad \overline{\eta},\ \min \eta,\ \max \eta,\quad
        \overline{|\hat m_t| / \sqrt{\hat v_t}},\quad
        \sqrt{\overline{|\eta\, \hat m_t|^2}}

    (bars are means over the leaf's entries) in a :class:`DiagnosticsState`. The last is the
    RMS of the update before weight decay; measure the final updates with :func:`update_rms`.

    Cost: per entry a root, a reciprocal and a reciprocal root, and five reductions per leaf
    (``python -m benchmarks.monitor_overhead``; figures on the docs' monitor page).
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
        :class:`DiagnosticsState`.

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

    def init_fn(params: Params) -> DiagnosticsState:
        check_float_leaves(params)
        leaves, treedef = jax.tree.flatten(params)
        dtype = _summary_dtype_of(params)
        device = replicated_like(params)
        return DiagnosticsState(
            count=zero_count(params),
            factors=jnp.zeros([2, len(leaves)], dtype, device=device),
            summaries=jnp.zeros([len(SUMMARIES), len(leaves)], dtype, device=device),
            treedef=treedef,
        )

    def update_fn(
        estimates: Moments, state: DiagnosticsState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Moments, DiagnosticsState]:
        del params
        expect_moments(estimates, "monitor")
        placeholder = jax.tree.unflatten(state.treedef, [0] * state.treedef.num_leaves)
        check_matching(placeholder, estimates.nu, other_name="moments", check_shapes=False)
        if estimates.corrected and not corrected:
            raise ValueError(
                "monitor(corrected=False) received moments that are already corrected: "
                "place it before bias_correction() or drop corrected=False"
            )
        dtype = state.summaries.dtype
        root = estimates.kind != "infinity_norm"
        if is_function(learning_rate):
            steps_taken = estimates.count - jnp.ones_like(estimates.count)
            rate = evaluate_schedule(learning_rate, steps_taken)
        else:
            rate = learning_rate
        factors1, factors2 = bias_correction_factors(estimates)

        def row(tree: Any) -> jax.Array:  # one value per leaf, in leaf order
            values = [x.astype(dtype) for x in jax.tree.leaves(tree)]
            return jnp.stack(values) if values else jnp.zeros([0], dtype)

        correct = corrected and not estimates.corrected and estimates.kind != "sum_of_squares"

        def record(estimates: Moments) -> jax.Array:
            first, scale1, scale2 = estimates.first_moment(), 1.0, 1.0
            if correct:  # fold the correction's scalars into the summaries
                if estimates.nesterov:  # corrected term by term: correct the array
                    first = bias_correction().update(estimates, EmptyState())[0].mu
                elif estimates.b1 is not None:
                    scale1 = map_leaves(lambda c: 1 / c, factors1)
                scale2 = map_leaves(lambda c: 1 / c, factors2)
            columns = map_leaves(
                lambda m, v, s1, s2, lr, e, er: _summarize(m, v, s1, s2, lr, e, er, root, dtype),
                first,
                estimates.nu,
                leafwise(scale1, estimates.nu, "scale1"),
                leafwise(scale2, estimates.nu, "scale2"),
                leafwise(rate, estimates.nu, "learning_rate"),
                leafwise(eps, estimates.nu, "eps"),
                leafwise(eps_root, estimates.nu, "eps_root"),
            )
            leaves = jax.tree.leaves(columns)
            return jnp.stack(leaves, axis=-1) if leaves else jnp.zeros_like(state.summaries)

        if every == 1:
            summaries = record(estimates)
        else:
            due = jnp.remainder(estimates.count, every) == jnp.zeros([], estimates.count.dtype)

            def record_due(estimates: Moments) -> jax.Array:  # members not due keep theirs
                return jnp.where(due, record(estimates), state.summaries)

            summaries = jax.lax.cond(
                _any_member(due), record_due, lambda _: state.summaries, estimates
            )
        new_state = DiagnosticsState(
            count=estimates.count.astype(state.count.dtype),
            factors=jnp.stack([row(factors1), row(factors2)]),
            summaries=summaries,
            treedef=state.treedef,
        )
        return estimates, new_state

    return declare_stage(GradientTransformation(init_fn, update_fn), takes=MOMENTS, emits=MOMENTS)
