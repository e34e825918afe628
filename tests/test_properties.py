"""Properties over random pytrees, dtypes and hyperparameters (hypothesis).

The number of examples is bounded by a settings profile so that the file runs in seconds:
``ADAMJAX_HYPOTHESIS_PROFILE=thorough`` runs many more, with fresh random examples.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adamjax
from adamjax import presets

settings.register_profile(
    "adamjax-quick",
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "adamjax-thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(
    "adamjax-" + os.environ.get("ADAMJAX_HYPOTHESIS_PROFILE", "quick").removeprefix("adamjax-")
)

DTYPES = {
    "float32": jnp.float32,
    "float64": jnp.float64,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
}
# unit roundoff of each dtype, for "equal up to rounding" comparisons
ULP = {"float32": 2.0**-23, "float64": 2.0**-52, "bfloat16": 2.0**-7, "float16": 2.0**-10}
# largest gradient entry drawn: float16 keeps g^2 (stored in float16 by default) finite
MAX_GRAD = {"float32": 1e4, "float64": 1e4, "bfloat16": 1e4, "float16": 100.0}


@dataclasses.dataclass(frozen=True)
class Shape:
    """A leaf of the drawn structure (a tuple would be a pytree node)."""

    dims: tuple[int, ...]


SHAPES = st.lists(st.integers(0, 3), max_size=3).map(lambda dims: Shape(tuple(dims)))
LEAVES = st.one_of(SHAPES, SHAPES, SHAPES, st.none())
KEYS = st.sampled_from(["w", "b", "encoder", "x1"])
STRUCTURES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=3),
    ),
    max_leaves=6,
).filter(lambda structure: structure is not None)  # a bare None means "no params" to update


def _is_shape(x: Any) -> bool:
    return isinstance(x, Shape)


@dataclasses.dataclass
class Problem:
    params: Any
    grads: list[Any]  # a few steps of gradients
    dtype: str
    lr: float
    b1: float
    b2: float
    eps: float


@st.composite
def problems(draw: Any, dtypes: tuple[str, ...] = tuple(DTYPES), steps: int = 3) -> Problem:
    structure = draw(STRUCTURES)
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    zero_fraction = draw(st.sampled_from([0.0, 0.3]))
    magnitude = draw(st.floats(-3.0, np.log10(MAX_GRAD[dtype])))
    rng = np.random.default_rng(seed)

    def array(shape: Shape, scale: float = 1.0) -> jax.Array:
        values = rng.normal(size=shape.dims) * scale
        values = np.where(rng.random(shape.dims) < zero_fraction, 0.0, values)
        values = np.clip(values, -MAX_GRAD[dtype], MAX_GRAD[dtype])
        return jnp.asarray(values).astype(DTYPES[dtype])

    params = jax.tree.map(array, structure, is_leaf=_is_shape)
    grads = [
        jax.tree.map(lambda s: array(s, 10.0**magnitude), structure, is_leaf=_is_shape)
        for _ in range(steps)
    ]
    return Problem(
        params=params,
        grads=grads,
        dtype=dtype,
        lr=draw(st.floats(1e-4, 1.0)),
        b1=draw(st.floats(0.0, 0.99)),
        b2=draw(st.floats(0.5, 0.9999)),
        eps=draw(st.floats(1e-8, 1e-3)),
    )


# every optimizer of the Adam family that takes (lr, b1, b2, eps)
FAMILY: dict[str, Callable[[Problem], Any]] = {
    "adam": lambda p: adamjax.adam(p.lr, p.b1, p.b2, p.eps),
    "adamw": lambda p: adamjax.adamw(p.lr, p.b1, p.b2, p.eps, weight_decay=0.01),
    "amsgrad": lambda p: adamjax.amsgrad(p.lr, p.b1, p.b2, p.eps),
    "nadam": lambda p: adamjax.nadam(p.lr, p.b1, p.b2, p.eps),
    "adamax": lambda p: adamjax.adamax(p.lr, p.b1, p.b2, p.eps),
    "lazy_adam": lambda p: adamjax.lazy_adam(p.lr, p.b1, p.b2, p.eps),
    "keras_adam": lambda p: presets.keras_adam(p.lr, p.b1, p.b2, p.eps),
    "adam-float32-moments": lambda p: adamjax.adam(
        p.lr, p.b1, p.b2, p.eps, mu_dtype=jnp.float32, nu_dtype=jnp.float32
    ),
    "skip_nonfinite-adam": lambda p: adamjax.skip_nonfinite(adamjax.adam(p.lr, p.b1, p.b2, p.eps)),
}
NAMES = st.sampled_from(sorted(FAMILY))


def _leaves(tree: Any) -> list[np.ndarray]:
    return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(tree)]


def _run(optimizer: Any, problem: Problem, jit: bool = False) -> Any:
    update = jax.jit(optimizer.update) if jit else optimizer.update
    params, state = problem.params, optimizer.init(problem.params)
    history = []
    for grads in problem.grads:
        updates, state = update(grads, state, params)
        params = adamjax.apply_updates(params, updates)
        history.append((updates, state, params))
    return history


@PROFILE
@given(problem=problems(), name=NAMES)
def test_finite_in_finite_out(problem: Problem, name: str) -> None:
    for updates, state, params in _run(FAMILY[name](problem), problem, jit=True):
        for tree in (updates, state, params):
            for leaf in jax.tree.leaves(tree):
                assert np.all(np.isfinite(np.asarray(leaf, np.float64))), name


ZERO_GRAD_FAMILY = (
    "adam",
    "amsgrad",
    "nadam",
    "adamax",
    "lazy_adam",
    "keras_adam",
    "adam-float32-moments",
    "skip_nonfinite-adam",
)


@PROFILE
@given(problem=problems(), name=st.sampled_from(ZERO_GRAD_FAMILY))
def test_zero_gradient_gives_a_zero_update(problem: Problem, name: str) -> None:
    zeros = jax.tree.map(jnp.zeros_like, problem.params)
    problem = dataclasses.replace(problem, grads=[zeros, zeros, zeros])
    for updates, _, params in _run(FAMILY[name](problem), problem, jit=True):
        for leaf in _leaves(updates):
            np.testing.assert_array_equal(leaf, np.zeros_like(leaf))
        for now, start in zip(_leaves(params), _leaves(problem.params), strict=True):
            np.testing.assert_array_equal(now, start)


@PROFILE
@given(problem=problems(steps=1), eps_root=st.sampled_from([0.0, 1e-12]))
def test_first_adam_update_is_minus_lr_sign_up_to_eps(problem: Problem, eps_root: float) -> None:
    r"""Step 1: :math:`\hat m = g, \hat v = g^2`, so :math:`u = -lr\,g / (|g| + eps)`."""
    optimizer = adamjax.adam(problem.lr, problem.b1, problem.b2, problem.eps, eps_root=eps_root)
    [(updates, _, _)] = _run(optimizer, problem, jit=True)
    tolerance = 8 * ULP[problem.dtype] * problem.lr
    for u, g in zip(_leaves(updates), _leaves(problem.grads[0]), strict=True):
        # how far from -lr * sign(g) eps (and eps_root) may take it
        allowed = problem.lr * (problem.eps + np.sqrt(eps_root)) / (np.abs(g) + problem.eps)
        assert np.all(np.abs(u + problem.lr * np.sign(g)) <= allowed + tolerance)


def _roundoff(*trees: Any) -> float:
    """The unit roundoff of the least precise floating dtype in ``trees`` (float32 moments of
    float64 params round like float32)."""
    dtypes = [jnp.result_type(leaf) for leaf in jax.tree.leaves(trees)]
    return max(
        [float(jnp.finfo(d).eps) / 2 for d in dtypes if jnp.issubdtype(d, jnp.inexact)],
        default=2.0**-52,
    )


def _close(a: Any, b: Any, roundoff: float) -> None:
    """Equal up to rounding. XLA evaluates constant subexpressions (log1p(-(1 - b)) in the bias
    correction) at compile time under jit and at run time eagerly, with different
    approximations: float64 results differ by up to ~1e-14, hence the 1e-12 floor."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    tolerance = max(32 * roundoff, 1e-12)
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        scale = max(1.0, float(np.max(np.abs(y), initial=0.0)))
        np.testing.assert_allclose(x, y, rtol=tolerance, atol=tolerance * scale)


@PROFILE
@given(problem=problems(), name=NAMES, members=st.integers(1, 3))
def test_vmapped_equals_looped(problem: Problem, name: str, members: int) -> None:
    """A batch of optimizers, each with its own learning rate and b1, under one vmap."""
    lrs = jnp.asarray([problem.lr * (i + 1) / members for i in range(members)], jnp.float32)
    b1s = jnp.asarray([problem.b1 * i / members for i in range(members)], jnp.float32)

    def build(lr: Any, b1: Any) -> Any:
        return FAMILY[name](dataclasses.replace(problem, lr=lr, b1=b1))

    stack = lambda tree: jax.tree.map(lambda x: jnp.stack([x] * members), tree)  # noqa: E731
    params, grads = stack(problem.params), [stack(g) for g in problem.grads]

    def step(grads: Any, state: Any, params: Any, lr: Any, b1: Any) -> Any:
        updates, state = build(lr, b1).update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    batched_step = jax.jit(jax.vmap(step))
    state = jax.vmap(lambda p, lr, b1: build(lr, b1).init(p))(params, lrs, b1s)
    for g in grads:
        params, state = batched_step(g, state, params, lrs, b1s)

    single_step = jax.jit(step)
    for i in range(members):
        p, s = problem.params, build(lrs[i], b1s[i]).init(problem.params)
        for g in problem.grads:
            p, s = single_step(g, s, p, lrs[i], b1s[i])
        roundoff = _roundoff(p, s)
        _close(jax.tree.map(lambda x, i=i: x[i], params), p, roundoff)
        _close(jax.tree.map(lambda x, i=i: x[i], state), s, roundoff)


@settings(PROFILE, max_examples=max(4, PROFILE.max_examples // 3))  # eager: one compile per op
@given(problem=problems(), name=NAMES)
def test_jitted_equals_eager(problem: Problem, name: str) -> None:
    optimizer = FAMILY[name](problem)
    eager = _run(optimizer, problem)
    jitted = _run(optimizer, problem, jit=True)
    for (u1, s1, p1), (u2, s2, p2) in zip(eager, jitted, strict=True):
        roundoff = _roundoff(u1, s1, p1)
        _close(u2, u1, roundoff)
        _close(s2, s1, roundoff)
        _close(p2, p1, roundoff)
