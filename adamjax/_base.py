"""The protocol every adamjax transform follows, and the types it speaks in.

A gradient transformation is a pair of pure functions::

    state = init(params)
    updates, state = update(grads, state, params=None, **extra_args)

States are NamedTuples of arrays, so they jit, vmap, donate, shard and checkpoint as ordinary
pytrees. Any object with ``init`` and ``update`` of these signatures (an optax transform, for
example) composes with adamjax transforms in :func:`adamjax.chain`.

``extra_args`` are keyword arguments such as ``value=loss`` that some transforms need (optax's
``reduce_on_plateau``, for example). As in optax's ``GradientTransformationExtraArgs``, every
adamjax transform accepts them, and every transform that holds others (:func:`adamjax.chain`, the
wrappers) hands each inner transform the ones its ``update`` takes (:func:`call_update`).

Between a moment estimator and :func:`adamjax.normalize`, the value flowing down a chain is not a
gradient tree but :class:`adamjax.Moments`. Each adamjax transform declares what it takes and what
it emits (:func:`declare_stage`), so that :func:`adamjax.chain` refuses, when it is built, a
transform placed where it would receive the wrong kind of value.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias

import chex
import jax
from jax.typing import ArrayLike

__all__ = [
    "GRADIENTS",
    "MOMENTS",
    "EmptyState",
    "GradientTransformation",
    "Params",
    "PerLeaf",
    "PerLeafOrSchedule",
    "Schedule",
    "ScalarOrSchedule",
    "Transform",
    "TransformInit",
    "TransformUpdate",
    "Updates",
    "call_update",
    "check_transform",
    "declare_stage",
    "describe",
    "expect_state",
    "init_empty_state",
    "stage_of",
]

Params: TypeAlias = chex.ArrayTree
"""A pytree of arrays: the parameters being optimized."""

Updates: TypeAlias = chex.ArrayTree
"""A pytree of arrays with the structure of the params: gradients or updates."""

State: TypeAlias = Any
"""A transform's state: a pytree of arrays, of a type each transform defines (a NamedTuple, or
for :func:`adamjax.chain` the tuple of its transforms' states)."""

Schedule: TypeAlias = Callable[[jax.Array], ArrayLike]
"""A function ``count -> value`` of the number of steps already taken."""

ScalarOrSchedule: TypeAlias = ArrayLike | Schedule
"""A number or a scalar array (a tracer too), or a :data:`Schedule` (as optax's type)."""

PerLeaf: TypeAlias = ArrayLike | Iterable["PerLeaf"] | Mapping[Any, "PerLeaf"]
"""A hyperparameter given once for every leaf, or leaf by leaf.

Either a number or an array (a tracer too) shared by every leaf, or a pytree with the params'
structure holding one such value per leaf, each broadcasting to its param's shape.
"""

PerLeafOrSchedule: TypeAlias = PerLeaf | Schedule
"""A :data:`PerLeaf` value, or a :data:`Schedule` of the steps already taken (a learning rate,
a weight decay)."""


class TransformInit(Protocol):
    """``init(params) -> state``."""

    def __call__(self, params: Params, /) -> State: ...


class TransformUpdate(Protocol):
    """``update(grads, state, params=None, **extra_args) -> (updates, state)``.

    What goes in and out is :data:`Updates`, except between a moment estimator and
    :func:`adamjax.normalize`, where it is :class:`adamjax.Moments` (see :func:`declare_stage`):
    hence ``Any``.
    """

    def __call__(
        self, updates: Any, state: State, params: Params | None = None, /, **extra_args: Any
    ) -> tuple[Any, State]: ...


class GradientTransformation(NamedTuple):
    """A pure optimizer transform: ``init(params) -> state`` and
    ``update(grads, state, params=None, **extra_args) -> (updates, state)``.

    Example:
        >>> import jax.numpy as jnp, adamjax
        >>> opt = adamjax.adam(1e-3)
        >>> params = {"w": jnp.ones(3)}
        >>> state = opt.init(params)
        >>> updates, state = opt.update({"w": jnp.ones(3)}, state, params)
        >>> params = adamjax.apply_updates(params, updates)
    """

    init: TransformInit
    update: TransformUpdate


class Transform(Protocol):
    """What :func:`adamjax.chain`, :func:`adamjax.partition` and the wrappers take: any object
    with ``init`` and ``update`` (an adamjax or optax ``GradientTransformation``, a user's own
    class). Its ``update`` may take fewer keyword arguments than :class:`TransformUpdate`
    (:func:`call_update` hands it the ones it takes)."""

    @property
    def init(self) -> Callable[[Params], State]: ...

    @property
    def update(self) -> Callable[..., tuple[Any, State]]: ...


class EmptyState(NamedTuple):
    """The state of a transform that keeps none."""


def init_empty_state(params: Params) -> EmptyState:
    """``init`` of a transform that keeps no state."""
    del params
    return EmptyState()


Stage = Literal["gradients", "moments"]
"""What flows between transforms: a gradient tree, or :class:`adamjax.Moments`."""

GRADIENTS: Stage = "gradients"
MOMENTS: Stage = "moments"

_STAGE_ATTRIBUTE = "__adamjax_stage__"


def declare_stage(
    transform: GradientTransformation, *, takes: Stage, emits: Stage
) -> GradientTransformation:
    """Record on ``transform`` what its ``update`` takes and emits, and return it.

    Transforms that declare nothing (optax's, users' own) are taken to turn gradients into
    updates. Only the stages of the moments pipeline need a declaration: a user's own
    ``Moments -> Moments`` block declares ``takes="moments", emits="moments"`` so that
    :func:`adamjax.chain` accepts it between a moment estimator and :func:`adamjax.normalize`.

    Args:
        transform: the transform; its ``update`` function carries the declaration.
        takes: ``"gradients"`` or ``"moments"``.
        emits: ``"gradients"`` or ``"moments"``.

    Returns:
        ``transform`` itself.

    Raises:
        ValueError: for a stage that is neither ``"gradients"`` nor ``"moments"``.
    """
    for name, stage in (("takes", takes), ("emits", emits)):
        if stage not in (GRADIENTS, MOMENTS):
            raise ValueError(f'{name} must be "gradients" or "moments", got {stage!r}')
    setattr(transform.update, _STAGE_ATTRIBUTE, (takes, emits))
    return transform


def stage_of(transform: Transform) -> tuple[Stage, Stage]:
    """``(takes, emits)`` of a transform: what :func:`declare_stage` recorded, else gradients."""
    return getattr(transform.update, _STAGE_ATTRIBUTE, (GRADIENTS, GRADIENTS))


def describe(transform: Any) -> str:
    """A short name for a transform in error messages: the function that built it (a
    ``*_named`` builder, which only renames an argument in errors, under the name it extends)."""
    update = getattr(transform, "update", None)
    name = getattr(update, "__qualname__", None) or type(transform).__name__
    return name.split(".<locals>")[0].rsplit(".", 1)[-1].removesuffix("_named") + "()"


def check_transform(inner: Any, name: str, *, whole: bool = True) -> None:
    """Raise ``TypeError`` unless ``inner`` has ``init`` and ``update``.

    With ``whole``, it must also turn gradients into updates (no moment estimates in or out),
    as the transforms that wrappers such as :func:`adamjax.skip_nonfinite` hold must.
    """
    if not (callable(getattr(inner, "init", None)) and callable(getattr(inner, "update", None))):
        raise TypeError(f"{name} must have init and update methods, got {type(inner).__name__}")
    if not whole:
        return
    takes, emits = stage_of(inner)
    if takes == MOMENTS:
        raise TypeError(
            f"{name} ({describe(inner)}) takes moment estimates; it must take gradients: "
            "start it with a moment estimator such as moments()"
        )
    if emits == MOMENTS:
        raise TypeError(
            f"{name} ({describe(inner)}) emits moment estimates; it must emit updates: "
            "end it with normalize() and a learning rate"
        )


def expect_state(state: Any, own: type, consumer: str) -> None:
    """Raise ``TypeError`` unless ``state`` is an ``own``, the state type ``consumer``'s
    ``init`` returns (for wrappers, whose state holds another transform's)."""
    if not isinstance(state, own):
        raise TypeError(
            f"{consumer}() takes the {own.__name__} its init returned, got {type(state).__name__}"
        )


@functools.lru_cache(maxsize=4096)
def _accepted_extras(update: Callable[..., Any]) -> tuple[bool, frozenset[str]]:
    """Whether ``update`` takes ``**kwargs``; the keywords it names past the first three."""
    try:
        parameters = list(inspect.signature(update).parameters.values())
    except (TypeError, ValueError):
        return False, frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return True, frozenset()
    keywords = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    names = [p.name for p in parameters[3:] if p.kind in keywords]
    return False, frozenset(names)


def call_update(
    transform: Transform,
    updates: Any,
    state: State,
    params: Params | None,
    extra_args: dict[str, Any],
) -> tuple[Any, State]:
    """``transform.update(updates, state, params, **extras)`` with the extras it takes.

    A transform whose ``update`` takes ``**kwargs`` gets every extra argument; one that names
    some keywords gets those; others get none (optax's ``with_extra_args_support`` rule).
    """
    if not extra_args:
        return transform.update(updates, state, params)
    try:
        takes_all, names = _accepted_extras(transform.update)
    except TypeError:  # an unhashable callable
        takes_all, names = _accepted_extras.__wrapped__(transform.update)
    if takes_all:
        return transform.update(updates, state, params, **extra_args)
    chosen = {key: value for key, value in extra_args.items() if key in names}
    return transform.update(updates, state, params, **chosen)
