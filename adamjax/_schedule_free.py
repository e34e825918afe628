r"""Schedule-Free optimization (Defazio et al., 2024): momentum replaced by averaging.

A base optimizer without momentum moves a sequence :math:`z`; the params the gradient is taken
at, :math:`y`, interpolate between :math:`z` and a weighted running average :math:`x` of the
:math:`z`'s, and :math:`x` is what to evaluate. No decaying learning-rate schedule is needed::

    schedule_free(chain(moments(None, b2), bias_correction(), normalize(eps),
                        add_decayed_weights(wd), scale_by_learning_rate(lr)), lr, b1)

.. math::
    z_{t+1} = z_t + \Delta_t, \qquad
    x_{t+1} = (1 - c_{t+1})\, x_t + c_{t+1}\, z_{t+1}, \qquad
    y_{t+1} = b_1 x_{t+1} + (1 - b_1)\, z_{t+1}

with :math:`\Delta_t` the base optimizer's update at :math:`y_t` and
:math:`c_{t+1} = \gamma_{\max}^p / \sum_{i \le t+1} \gamma_{\max,i}^p`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from adamjax._base import (
    GradientTransformation,
    Params,
    PerLeaf,
    ScalarOrSchedule,
    Transform,
    Updates,
    call_update,
    check_transform,
)
from adamjax._combine import chain
from adamjax._correction import bias_correction
from adamjax._decay import add_decayed_weights
from adamjax._estimates import expect_gradients
from adamjax._moments import moments
from adamjax._normalize import normalize
from adamjax._placement import replicated_like
from adamjax._scale import scale_by_learning_rate
from adamjax._tree import check_float_leaves, check_matching, compute_dtype, map_leaves
from adamjax._validate import check_dtype, check_int, hyperparameter, is_concrete, is_function

__all__ = [
    "ScheduleFreeState",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
]


class ScheduleFreeState(NamedTuple):
    """State of :func:`schedule_free` (optax's ``ScheduleFreeState`` fields)."""

    b1: jax.Array  # the interpolation weight b1, in the params' lowest float dtype
    weight_sum: jax.Array  # sum of the averaging weights so far
    # shape (), int32: 1 + updates taken so far (the learning rate schedule's argument)
    step_count: jax.Array
    max_lr: jax.Array  # the largest learning rate seen so far
    base_optimizer_state: Any  # the base optimizer's state
    z: Params  # the base optimizer's iterate


def _lowest_float(params: Params) -> Any:
    """The narrowest float dtype among the params' leaves (optax's ``tree.dtype(.., 'lowest')``)."""
    dtypes = [jnp.result_type(leaf) for leaf in jax.tree.leaves(params)]
    floats = [jnp.finfo(d).dtype for d in dtypes if jnp.issubdtype(d, jnp.inexact)]
    return min(floats, key=lambda d: d.itemsize) if floats else jnp.dtype(jnp.float32)


def _averaging_weight(weight: jax.Array, total: jax.Array) -> jax.Array:
    """``weight / total``: 0 for 0/0, NaN when either is NaN (optax's rule)."""
    ratio = jnp.nan_to_num(weight / total, nan=0.0, posinf=jnp.inf)
    return jnp.where(jnp.isnan(weight) | jnp.isnan(total), jnp.full(weight.shape, jnp.nan), ratio)


def _interpolated_step(y: jax.Array, z_old: jax.Array, z: jax.Array, b1: Any, ck: Any) -> Any:
    """``y_{t+1} - y_t`` from ``y_t``, ``z_t``, ``z_{t+1}`` (in ``y``'s dtype)."""
    dtype = compute_dtype(y.dtype, z.dtype)
    y_c, z_old_c, z_c = y.astype(dtype), z_old.astype(dtype), z.astype(dtype)
    x_prev = (y_c - (1.0 - b1) * z_old_c) / b1
    x = (1.0 - ck.astype(dtype)) * x_prev + ck.astype(dtype) * z_c
    return (b1 * x + (1.0 - b1) * z_c - y_c).astype(y.dtype)


def _shared(name: str, value: Any, *, schedule: bool = False, **bounds: Any) -> Any:
    """A checked hyperparameter that every leaf shares: schedule-free keeps one averaging weight
    and one ``b1`` for the whole tree (scalars in its state, as in optax)."""
    if not is_function(value) and not jax.tree_util.treedef_is_leaf(
        jax.tree_util.tree_structure(value)
    ):
        raise ValueError(
            f"{name} must be one value shared by every leaf, got a per-leaf tree: schedule-free "
            "averaging keeps one weight and one b1 for all params (scalars in its state)"
        )
    return hyperparameter(name, value, schedule=schedule, **bounds)


def _check_b1(b1: Any) -> Any:
    b1 = _shared("b1", b1, upper=1.0, upper_open=False)
    if is_concrete(b1) and np.any(np.asarray(b1) <= 0):
        raise ValueError(f"b1 must be in (0, 1] (schedule-free divides by it), got {b1!r}")
    return b1


def schedule_free(
    base_optimizer: Transform,
    learning_rate: ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    weight_lr_power: ArrayLike = 2.0,
    state_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Make ``base_optimizer`` schedule-free (Defazio et al., 2024), as optax's.

    The params :math:`y_t` given to ``update`` are where gradients are taken; the state keeps
    the base optimizer's iterate :math:`z_t`, and the average :math:`x_t` is recovered from both
    (:func:`schedule_free_eval_params`):

    .. math::
        z_{t+1} = z_t + \Delta_t, \quad
        x_t = \frac{y_t - (1 - b_1) z_t}{b_1}, \quad
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
        y_{t+1} = b_1 x_{t+1} + (1 - b_1) z_{t+1}

    where :math:`\Delta_t` is the base optimizer's update and
    :math:`c_{t+1} = w_{t+1} / \sum_{i \le t+1} w_i`, :math:`w_i = (\max_{j \le i} \gamma_j)^p`,
    with :math:`\gamma_j` = ``learning_rate(j)`` for :math:`j = 1, 2, \ldots` (a schedule is
    called with 1 on the first step here, as in optax). The update returned is
    :math:`y_{t+1} - y_t`. The base optimizer should have no momentum of its own.

    Args:
        base_optimizer: the transform whose updates move :math:`z` (momentum off).
        learning_rate: :math:`\gamma`, a number or a schedule (without decay; warm-up is fine).
        b1: :math:`b_1 \in (0, 1]`, the weight of :math:`x` in :math:`y`.
        weight_lr_power: :math:`p \ge 0`, the power of the learning rate in the weights.
        state_dtype: storage dtype of :math:`z` (default: the params').

    Returns:
        A :class:`adamjax.GradientTransformation` with a :class:`ScheduleFreeState`.

    Raises:
        ValueError: naming the argument, for a value out of range, or for a per-leaf tree
            (these three arguments are shared by every leaf).
        TypeError: for a ``base_optimizer`` without ``init`` and ``update``, or a
            ``state_dtype`` that is not floating-point.

    References:
        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024,
        https://arxiv.org/abs/2405.15682
    """
    check_transform(base_optimizer, "base_optimizer")
    learning_rate = _shared("learning_rate", learning_rate, schedule=True)
    b1 = _check_b1(b1)
    weight_lr_power = _shared("weight_lr_power", weight_lr_power)
    check_dtype("state_dtype", state_dtype, complex_ok=False)

    def init_fn(params: Params) -> ScheduleFreeState:
        check_float_leaves(params)
        dtype, where = _lowest_float(params), replicated_like(params)
        z = map_leaves(lambda p: jnp.array(p, dtype=state_dtype or p.dtype, copy=True), params)
        return ScheduleFreeState(
            b1=jnp.asarray(b1, dtype=dtype, device=where),
            weight_sum=jnp.zeros([], dtype, device=where),
            step_count=jnp.ones([], jnp.int32, device=where),
            max_lr=jnp.zeros([], dtype, device=where),
            base_optimizer_state=base_optimizer.init(params),
            z=z,
        )

    def update_fn(
        grads: Updates, state: ScheduleFreeState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, ScheduleFreeState]:
        expect_gradients(grads, "schedule_free")
        if params is None:
            raise ValueError("schedule_free() needs the params: call update(grads, state, params)")
        check_matching(params, grads)
        rate = learning_rate(state.step_count) if is_function(learning_rate) else learning_rate
        max_lr = jnp.maximum(state.max_lr, jnp.asarray(rate).astype(state.max_lr.dtype))
        weight = max_lr ** jnp.asarray(weight_lr_power).astype(max_lr.dtype)
        total = state.weight_sum + weight
        ck = _averaging_weight(weight, total)
        base_updates, base_state = call_update(
            base_optimizer, grads, state.base_optimizer_state, params, extra_args
        )
        z = map_leaves(
            lambda zi, ui: (zi + ui.astype(zi.dtype)).astype(zi.dtype), state.z, base_updates
        )
        updates = map_leaves(
            lambda y, zo, zn: _interpolated_step(y, zo, zn, b1, ck), params, state.z, z
        )
        count = jnp.where(
            state.step_count < np.iinfo(np.int32).max, state.step_count + 1, state.step_count
        )
        return updates, ScheduleFreeState(state.b1, total, count, max_lr, base_state, z)

    return GradientTransformation(init_fn, update_fn)


def schedule_free_eval_params(state: Any, params: Params) -> Params:
    r"""The average :math:`x_t = (y_t - (1 - b_1) z_t) / b_1` to evaluate the model at.

    Args:
        state: the :class:`ScheduleFreeState` of :func:`schedule_free` (or optax's).
        params: :math:`y_t`, the params being trained.

    Returns:
        :math:`x_t`, with the params' structure and dtypes.

    Raises:
        TypeError: if ``state`` has no ``b1`` and ``z`` (the state of a chain holding the
            schedule-free transform, say: pass its own state).
        ValueError: naming the path where the params do not match ``state.z``.
    """
    b1, z = getattr(state, "b1", None), getattr(state, "z", None)
    if b1 is None or z is None:
        raise TypeError(
            "schedule_free_eval_params() takes the ScheduleFreeState of schedule_free(), "
            f"got {type(state).__name__}"
        )
    check_matching(params, z, other_name="state.z")

    def average(y: jax.Array, zi: jax.Array) -> jax.Array:
        dtype = compute_dtype(y.dtype, zi.dtype)
        weight = jnp.asarray(b1).astype(dtype)
        return ((y.astype(dtype) - (1.0 - weight) * zi.astype(dtype)) / weight).astype(y.dtype)

    return map_leaves(average, params, z)


def _warmup(peak: Any, steps: int) -> Any:
    """``count -> peak * min(count, steps) / steps`` (optax's ``warmup_constant_schedule``
    from 0); ``peak`` throughout for ``steps == 0``."""
    if steps == 0:
        return lambda count: peak

    def schedule(count: jax.Array) -> jax.Array:
        done = jnp.clip(jnp.asarray(count), 0, steps).astype(jax.dtypes.canonicalize_dtype(float))
        return -peak * (1.0 - done / steps) + peak

    return schedule


def schedule_free_adamw(
    learning_rate: ArrayLike = 0.0025,
    warmup_steps: int | None = None,
    b1: ArrayLike = 0.9,
    b2: PerLeaf = 0.999,
    eps: PerLeaf = 1e-8,
    weight_decay: PerLeaf = 0.0,
    weight_lr_power: ArrayLike = 2.0,
    state_dtype: DTypeLike | None = None,
) -> GradientTransformation:
    r"""Schedule-Free AdamW (Defazio et al., 2024), as optax's ``contrib.schedule_free_adamw``.

    :func:`schedule_free` around Adam without momentum and decoupled weight decay:

    .. math::
        \Delta_t = -\gamma_k \left(\frac{g_t}{\sqrt{v_t / (1 - b_2^t)} + \epsilon}
            + \lambda\, y_t\right), \qquad v_t = b_2 v_{t-1} + (1 - b_2) |g_t|^2

    ``schedule_free(chain(moments(None, b2), bias_correction(), normalize(eps),
    add_decayed_weights(weight_decay), scale_by_learning_rate(lr)), lr, b1, weight_lr_power,
    state_dtype)``, with ``lr`` rising linearly from 0 over ``warmup_steps`` if given. The
    base optimizer sees the steps already taken (``lr(0)`` first) and the averaging weights
    ``lr(1), lr(2), ...``, as in optax. Evaluate at :func:`schedule_free_eval_params`.

    ``b2``, ``eps`` and ``weight_decay`` may each be a tree with the params' structure giving
    each leaf its own value; ``learning_rate``, ``b1`` and ``weight_lr_power`` are shared by
    every leaf (one averaging weight and one :math:`b_1` are kept for the whole tree).

    Args:
        learning_rate: :math:`\gamma`, the peak learning rate (a number).
        warmup_steps: length of a linear warm-up from 0, or ``None``.
        b1: :math:`b_1 \in (0, 1]`, the weight of the average in the params.
        b2: decay of the second moment, in ``[0, 1)``: one value or one per leaf.
        eps: :math:`\epsilon \ge 0`, added to the root: one value or one per leaf.
        weight_decay: :math:`\lambda \ge 0` (multiplied by the learning rate): one value or
            one per leaf.
        weight_lr_power: :math:`p \ge 0`, the power of the learning rate in the weights.
        state_dtype: storage dtype of :math:`z` (default: the params').

    Arguments, order, defaults and meaning are optax's.

    Returns:
        The :func:`schedule_free` transform above.

    Raises:
        ValueError: naming the argument, for a value out of range or a per-leaf tree for an
            argument every leaf shares; at ``init``/``update``, naming the argument and path,
            for a per-leaf tree that does not fit the params.
        TypeError: naming the argument, for a ``warmup_steps`` that is not an int.

    References:
        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024,
        https://arxiv.org/abs/2405.15682
    """
    rate: Any = _shared("learning_rate", learning_rate)
    if warmup_steps is not None:
        rate = _warmup(rate, check_int("warmup_steps", warmup_steps))
    base = chain(
        moments(None, b2),
        bias_correction(),
        normalize(eps),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(rate),
    )
    return schedule_free(base, rate, b1, weight_lr_power, state_dtype)
