r"""Hyperparameter search in one compiled run: every configuration trains at once.

A sweep is an ensemble whose members differ in their hyperparameters. :func:`sample` draws
``n`` configurations at random (or :func:`grid` lists every combination), and :func:`run` trains
all of them with one ``jit(vmap(scan(step)))`` and reports every member's loss curve and the
best configuration::

    configs = adamjax.sweep.sample(
        100, seed=0, learning_rate=adamjax.sweep.log_uniform(1e-4, 1e-1), b1=(0.8, 0.999)
    )
    result = adamjax.sweep.run(adamjax.adam, configs, loss_fn, params, steps=1000)
    result.best_hyperparameters()   # {'learning_rate': ..., 'b1': ...}
    result.losses                   # (100, 1000): every member's loss curve

Running it again with new values of the same shapes (and the same ``optimizer``, ``loss_fn`` and
``steps``) reuses the compiled program.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from adamjax import ensemble
from adamjax._apply import apply_updates
from adamjax._base import GradientTransformation, Params
from adamjax._validate import check_int

__all__ = [
    "LogUniform",
    "SweepResult",
    "Uniform",
    "grid",
    "log_uniform",
    "run",
    "sample",
    "uniform",
]


class Uniform(NamedTuple):
    """Uniform on ``[low, high)``."""

    low: float
    high: float


class LogUniform(NamedTuple):
    """Log-uniform on ``[low, high)``: uniform in :math:`\\log x`, for rates and epsilons."""

    low: float
    high: float


def uniform(low: float, high: float) -> Uniform:
    """Uniform distribution on ``[low, high)``; a tuple ``(low, high)`` means the same.

    Args:
        low: the smallest value.
        high: the bound above every value, ``> low``.

    Returns:
        A distribution to pass to :func:`adamjax.sweep.sample`.

    Raises:
        ValueError: unless ``low < high`` (both finite).
    """
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"uniform(low, high) needs finite low < high, got ({low}, {high})")
    return Uniform(float(low), float(high))


def log_uniform(low: float, high: float) -> LogUniform:
    """Log-uniform distribution on ``[low, high)``.

    Args:
        low: the smallest value, ``> 0``.
        high: the bound above every value, ``> low``.

    Returns:
        A distribution to pass to :func:`adamjax.sweep.sample`.

    Raises:
        ValueError: unless ``0 < low < high`` (both finite).
    """
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"log_uniform(low, high) needs finite 0 < low < high, got ({low}, {high})")
    return LogUniform(float(low), float(high))


def _draw(name: str, spec: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(spec, LogUniform):
        spec = log_uniform(*spec)
        return np.exp(rng.uniform(math.log(spec.low), math.log(spec.high), size=n))
    if isinstance(spec, (Uniform, tuple)):
        if len(spec) != 2:
            raise ValueError(f"{name}: a tuple means uniform(low, high), got {spec!r}")
        spec = uniform(*spec)
        return rng.uniform(spec.low, spec.high, size=n)
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name}: a list means a choice among its values, got []")
        return np.asarray(spec)[rng.integers(len(spec), size=n)]
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return np.full(n, float(spec))
    raise TypeError(
        f"{name} must be uniform(low, high) or a tuple, log_uniform(low, high), a list of "
        f"choices or a number, got {spec!r}"
    )


def sample(n: int, seed: int | np.random.Generator = 0, **distributions: Any) -> dict[str, Any]:
    """``n`` random configurations.

    Args:
        n: how many configurations.
        seed: an integer seed or a ``numpy.random.Generator``.
        **distributions: for each hyperparameter, :func:`uniform` (or a tuple ``(low, high)``),
            :func:`log_uniform`, a list of values to choose from, or a number kept fixed.

    Returns:
        ``{name: float64 array of shape (n,)}``, in the order given.

    Raises:
        ValueError, TypeError: naming the hyperparameter whose distribution is malformed.
    """
    n = check_int("n", n, minimum=1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return {name: _draw(name, spec, n, rng) for name, spec in distributions.items()}


def grid(**values: Sequence[float]) -> dict[str, Any]:
    """Every combination of the given values; the last name varies fastest.

    ``grid(learning_rate=[1e-3, 1e-2], b1=[0.8, 0.9])`` gives 4 configurations:
    ``learning_rate = [1e-3, 1e-3, 1e-2, 1e-2]``, ``b1 = [0.8, 0.9, 0.8, 0.9]``.

    Args:
        **values: for each hyperparameter name, the values to try.

    Returns:
        A dict mapping each name to an array with one value per configuration.

    Raises:
        ValueError: naming a hyperparameter with no values.
    """
    for name, options in values.items():
        if len(options) == 0:
            raise ValueError(f"grid() got no values for {name}")
    combinations = list(itertools.product(*values.values()))
    return {
        name: np.asarray([combination[i] for combination in combinations])
        for i, name in enumerate(values)
    }


class SweepResult(NamedTuple):
    """What :func:`run` returns."""

    hyperparameters: dict[str, Any]  # name -> (n,) array (or per-leaf tree), as trained
    losses: jax.Array  # (n, ceil(steps / log_every)): loss before updates 0, k, 2k, ...
    final_loss: jax.Array  # (n,): the loss at the params after the last update
    params: Params  # final params, leading axis n
    best: int  # member with the lowest finite final loss; -1 if none is finite

    def best_hyperparameters(self) -> dict[str, Any]:
        """The best member's configuration: Python floats for scalar hyperparameters.

        Raises:
            ValueError: if no member finished with a finite loss.
        """
        if self.best < 0:
            raise ValueError("no configuration finished with a finite loss")

        def pick(leaf: Any) -> Any:
            value = np.asarray(leaf[self.best])
            return value.item() if value.ndim == 0 else value

        return {name: jax.tree.map(pick, value) for name, value in self.hyperparameters.items()}


def _members(hyperparameters: Mapping[str, Any]) -> int | None:
    sizes = {
        int(jnp.shape(leaf)[0])
        for leaf in jax.tree.leaves(dict(hyperparameters))
        if jnp.ndim(leaf) > 0
    }
    if len(sizes) > 1:
        raise ValueError(
            f"hyperparameters disagree on the number of configurations: {sorted(sizes)}"
        )
    return sizes.pop() if sizes else None


_Carry = tuple[Params, Any]  # (params, optimizer state) of one member


@functools.partial(
    jax.jit, static_argnames=("optimizer", "loss_fn", "steps", "unroll", "log_every")
)
def _train(
    params: Params,
    hyperparameters: dict[str, Any],
    args: tuple[Any, ...],
    *,
    optimizer: Callable[..., GradientTransformation],
    loss_fn: Callable[..., jax.Array],
    steps: int,
    unroll: int,
    log_every: int,
) -> tuple[Params, jax.Array, jax.Array]:
    def member(params: Params, hp: dict[str, Any]) -> Any:
        transform = optimizer(**hp)

        def update(carry: _Carry, grads: Params) -> _Carry:
            params, state = carry
            updates, state = transform.update(grads, state, params)
            return apply_updates(params, updates), state

        def silent_step(carry: _Carry, _: None) -> tuple[_Carry, None]:
            return update(carry, jax.grad(loss_fn)(carry[0], *args)), None

        def logged_steps(carry: _Carry, length: int) -> tuple[_Carry, jax.Array]:
            """One step that records its loss, then ``length - 1`` that do not."""
            loss, grads = jax.value_and_grad(loss_fn)(carry[0], *args)
            carry = update(carry, grads)
            if length > 1:
                carry, _ = jax.lax.scan(silent_step, carry, None, length=length - 1, unroll=unroll)
            return carry, loss

        carry = (params, transform.init(params))
        chunks, rest = divmod(steps, log_every)
        carry, losses = jax.lax.scan(
            lambda carry, _: logged_steps(carry, log_every),
            carry,
            None,
            length=chunks,
            unroll=unroll if log_every == 1 else 1,
        )
        if rest:
            carry, last = logged_steps(carry, rest)
            losses = jnp.concatenate([losses, last[None]])
        params = carry[0]
        return params, losses, loss_fn(params, *args)

    return jax.vmap(member)(params, hyperparameters)


def run(
    optimizer: Callable[..., GradientTransformation],
    hyperparameters: Mapping[str, Any],
    loss_fn: Callable[..., jax.Array],
    params: Params,
    steps: int,
    *,
    args: Sequence[Any] = (),
    batched_params: bool = False,
    unroll: int = 1,
    log_every: int = 1,
) -> SweepResult:
    r"""Train one member per configuration, all in one compiled run, and pick the best.

    Member :math:`i` runs ``steps`` full-batch steps of ``optimizer(**config_i)`` on
    ``loss_fn(params, *args)``, exactly as it would alone. The best member is the one with the
    lowest final loss (NaN and infinite losses never win).

    Args:
        optimizer: the factory, e.g. ``adamjax.adam``; called with each member's values.
        hyperparameters: ``{name: values}`` from :func:`sample` or :func:`grid`: arrays of
            shape ``(n,)``; numbers are shared by every member.
        loss_fn: ``(params, *args) -> scalar loss``. Keep the same function object between
            sweeps to reuse the compiled program.
        params: the starting params, shared by every member; or, with ``batched_params``,
            one starting point per member (leading axis ``n``).
        steps: number of updates.
        args: extra arguments of ``loss_fn`` (data), shared by every member.
        batched_params: whether ``params`` already has a leading member axis.
        unroll: steps per iteration of the compiled loop (``jax.lax.scan``'s ``unroll``). On
            small problems, where each step is a few tiny kernels, 2 to 4 saves some of the
            loop's per-step overhead for a slightly longer compile; on models of any size, 1.
        log_every: record the loss every ``log_every`` steps (before updates
            :math:`0, k, 2k, \dots`). Only those steps evaluate the loss; the others compute
            the gradient alone. ``log_every=steps`` keeps just the starting loss, for a search
            that needs the final losses only.

    Returns:
        A :class:`SweepResult` with every loss curve (``losses`` of shape
        ``(n, ceil(steps / log_every))``), the final losses and params and the index of the
        best configuration.

    Raises:
        ValueError: naming the hyperparameter (and member) out of range, or if the number of
            configurations and of starting points differ.
    """
    steps = check_int("steps", steps, minimum=1)
    unroll = check_int("unroll", unroll, minimum=1)
    log_every = check_int("log_every", log_every, minimum=1)
    n = _members(hyperparameters)
    if batched_params:
        starts = ensemble.size(params)
        if n is not None and n != starts:
            raise ValueError(f"{n} configurations but {starts} starting points in params")
        n = starts
    n = 1 if n is None else n
    hp = ensemble._checked_hyperparameters(optimizer, n, hyperparameters)
    if not batched_params:
        params = jax.tree.map(lambda p: jnp.broadcast_to(p, (n, *jnp.shape(p))), params)
    params, losses, final = _train(
        params,
        hp,
        tuple(args),
        optimizer=optimizer,
        loss_fn=loss_fn,
        steps=steps,
        unroll=unroll,
        log_every=min(log_every, steps),
    )
    final_np = np.asarray(final, dtype=np.float64)
    finite = np.isfinite(final_np)
    best = int(np.argmin(np.where(finite, final_np, np.inf))) if finite.any() else -1
    return SweepResult(hp, losses, final, params, best)
