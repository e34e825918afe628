"""Hyperparameters are data: every kind of value is used as meant or refused, naming the argument.

Numbers, arrays and tracers (a new value never recompiles a jitted step); classes of input that
need care: values that round onto a bound in JAX's dtype, storage dtypes that cannot hold a
statistic, per-leaf values whose shapes would change the state's, one-element and longer shared
arrays, low-precision arrays, ``None``, NumPy integers, and zeros written as Python numbers or as
arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import adamjax
from adamjax import ensemble, presets, sweep
from tests import catalog
from tests import reference as ref

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def _grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))}


def _run(optimizer: Any, params: Any = PARAMS, steps: int = 3) -> tuple[Any, Any]:
    state = optimizer.init(params)
    for step in range(steps):
        updates, state = optimizer.update(
            jax.tree.map(lambda g, p: g.astype(p.dtype), _grads(step), params), state, params
        )
        params = adamjax.apply_updates(params, updates)
    return params, state


def _factories() -> dict[str, Callable[..., Any]]:
    names = [*catalog.ALIASES, *catalog.FAMILY]
    return {name: getattr(adamjax, name) for name in names}


def _numeric_arguments() -> list[Any]:
    """(alias, argument) for every numeric argument with a default, learning rates included."""
    out = []
    for name, factory in _factories().items():
        for arg, parameter in inspect.signature(factory).parameters.items():
            numeric = isinstance(parameter.default, float) or arg in ("learning_rate", "momentum")
            if arg == "initial_scale":  # rmsprop: only 0.0 is available (see test_errors)
                continue
            if numeric and not isinstance(parameter.default, bool):
                out.append(pytest.param(name, arg, id=f"{name}-{arg}"))
    return out


def _one_per_argument() -> list[Any]:
    """The first (alias, argument) for each distinct argument name: for the slower checks."""
    seen: dict[str, Any] = {}
    for param in _numeric_arguments():
        seen.setdefault(param.values[1], param)
    return list(seen.values())


# schedule-free averaging keeps one weight and one b1 for the whole tree (scalars in its state):
# these arguments are shared by every leaf, and a per-leaf tree is refused when built
SHARED_BY_EVERY_LEAF = {
    ("schedule_free_adamw", "learning_rate"),
    ("schedule_free_adamw", "b1"),
    ("schedule_free_adamw", "weight_lr_power"),
}


def _assert_refused_as_shared(name: str, arg: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{arg} must be one value shared by every leaf"):
        _build(name, **{arg: value})


def _build(name: str, **kwargs: Any) -> Any:
    kwargs.setdefault("learning_rate", 1e-2)
    return _factories()[name](**kwargs)


# ----- numbers, arrays and tracers -----------------------------------------------------------


def test_new_learning_rate_value_does_not_recompile() -> None:
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, state, grads, lr, b1, b2, eps):
        opt = adamjax.adam(lr, b1, b2, eps)
        updates, state = opt.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    params, state = PARAMS, adamjax.adam(0.1).init(PARAMS)
    for i, lr in enumerate([0.1, 0.01, 0.3, 1e-4]):
        params, state = step(params, state, _grads(i), lr, 0.9 - 0.1 * i, 0.99, 1e-8 * (i + 1))


def test_traced_hyperparameters_match_concrete_ones() -> None:
    grads = _grads(0)

    @jax.jit
    def traced(lr, b1, b2, eps, wd):
        opt = adamjax.adamw(lr, b1, b2, eps, weight_decay=wd)
        return opt.update(grads, opt.init(PARAMS), PARAMS)[0]

    concrete = adamjax.adamw(0.05, 0.8, 0.95, 1e-3, weight_decay=0.1)
    expected, _ = concrete.update(grads, concrete.init(PARAMS), PARAMS)
    chex.assert_trees_all_close(traced(0.05, 0.8, 0.95, 1e-3, 0.1), expected, rtol=1e-12)


# ----- decay rates just below 1 ------------------------------------------------------------


@pytest.mark.parametrize("arg", ["b1", "b2"])
def test_a_float64_array_that_rounds_to_one_in_float32_is_refused(arg: str) -> None:
    value: dict[str, Any] = {arg: np.asarray(1.0 - 1e-9)}
    with jax.enable_x64(False):
        with pytest.raises(ValueError, match=rf"^{arg} must be in \[0.0, 1.0\), but .* rounds to"):
            adamjax.adam(1e-3, **value)
        with pytest.raises(
            ValueError, match=rf"member 2: {arg} must be .* rounds to 1.0 in float32"
        ):
            ensemble.hyperparameters(adamjax.adam, 3, **{arg: np.array([0.9, 0.99, 1 - 1e-9])})
        configs = sweep.grid(**{arg: [0.9, 1 - 1e-9]})
        with pytest.raises(ValueError, match=rf"member 1: {arg} .* rounds to 1.0 in float32"):
            sweep.run(adamjax.adam, configs, lambda p: jnp.sum(p**2), jnp.ones(2), 3)


def test_decay_rates_close_to_one_are_exact_where_they_can_be() -> None:
    """A Python float is exact; so is a float64 array under x64: 1 - b is taken before rounding."""
    b2 = 1.0 - 1e-9
    for value in (b2, np.asarray(b2), jnp.asarray(b2)):
        params, state = _run(adamjax.adam(1e-2, b2=value))
        for key, start in PARAMS.items():
            reference = ref.Adam(np.asarray(start, np.float64), lr=1e-2, b2=b2)
            expected = np.asarray(start, np.float64)
            for step in range(3):
                expected = reference.step(expected, np.asarray(_grads(step)[key]))
            # 1 - b2**t cancels in the reference's float64 (about 1e-16 / 3e-9 relative)
            np.testing.assert_allclose(params[key], expected, rtol=1e-6)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
    with jax.enable_x64(False):  # float32 arithmetic, Python float: finite, and moving
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), PARAMS)
        moved, state = _run(adamjax.adam(1e-2, b2=b2), params)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((moved, state)))
        assert not np.allclose(moved["w"], 1.0)


# ----- storage dtypes ----------------------------------------------------------------------

DTYPE_ARGUMENTS = [
    ("mu_dtype", lambda d: adamjax.adam(1e-3, mu_dtype=d)),
    ("nu_dtype", lambda d: adamjax.adam(1e-3, nu_dtype=d)),
    ("mu_dtype", lambda d: adamjax.moments(mu_dtype=d)),
    ("nu_dtype", lambda d: adamjax.nadam(1e-3, nu_dtype=d)),
    ("nu_dtype", lambda d: adamjax.amsgrad(1e-3, nu_dtype=d)),
    ("nu_max_dtype", lambda d: adamjax.max_second_moment(nu_max_dtype=d)),
    ("accumulator_dtype", lambda d: adamjax.trace(0.9, accumulator_dtype=d)),
    ("accumulator_dtype", lambda d: adamjax.sgd(0.1, 0.9, accumulator_dtype=d)),
    (
        "accumulator_dtype",
        lambda d: adamjax.accumulate_gradients(adamjax.adam(), 2, accumulator_dtype=d),
    ),
]


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int8, jnp.uint8, jnp.bool_, "int16"])
@pytest.mark.parametrize(("arg", "build"), DTYPE_ARGUMENTS, ids=[a for a, _ in DTYPE_ARGUMENTS])
def test_integer_and_bool_storage_dtypes_are_refused(arg: str, build: Callable, dtype: Any):
    with pytest.raises(TypeError, match=rf"^{arg} must be a floating-point dtype"):
        build(dtype)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64])
@pytest.mark.parametrize(("arg", "build"), DTYPE_ARGUMENTS, ids=[a for a, _ in DTYPE_ARGUMENTS])
def test_floating_storage_dtypes_are_used(arg: str, build: Callable, dtype: Any) -> None:
    optimizer = build(dtype)
    state = optimizer.init(PARAMS)
    stored = [
        leaf.dtype for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert jnp.dtype(dtype) in stored


# ----- per-leaf shapes ---------------------------------------------------------------------


def _wrong_shapes() -> list[Any]:
    """(alias, argument, shape): four shapes each; the newer aliases' last three (the same
    check, in the code every alias shares) with the slow set."""
    out = []
    for param in _numeric_arguments():
        name, arg = param.values
        for i, shape in enumerate([(1, 3, 2), (2, 1), (3, 1, 1), (4,)]):
            slow = i > 0 and name in catalog.NEWER_FAMILY
            marks = [pytest.mark.slow] if slow else []
            out.append(
                pytest.param(
                    name, arg, shape, id=f"{param.id}-{'x'.join(map(str, shape))}", marks=marks
                )
            )
    return out


@pytest.mark.parametrize(("name", "arg", "shape"), _wrong_shapes())
def test_a_per_leaf_value_that_would_change_the_state_shape_is_refused(name, arg, shape):
    fill = 0.5 if arg not in ("learning_rate",) else 1e-2
    value = {"w": jnp.full(shape, fill), "b": fill}
    if (name, arg) in SHARED_BY_EVERY_LEAF:
        _assert_refused_as_shared(name, arg, value)
        return
    with pytest.raises(ValueError) as error:  # refused while tracing: no step need run
        jax.eval_shape(lambda: _run(_build(name, **{arg: value})))
    message = str(error.value)
    assert f"{arg}['w'] has shape {shape}" in message
    assert "does not broadcast to the shape (3, 2) of params['w'] without changing it" in message


@pytest.mark.parametrize(("name", "arg"), _one_per_argument())
def test_a_per_leaf_value_that_broadcasts_keeps_the_state_shapes(name: str, arg: str) -> None:
    fill = 0.5 if arg != "learning_rate" else 1e-2
    rows = {"w": jnp.full((3, 1), fill), "b": jnp.full((2,), fill)}
    if (name, arg) in SHARED_BY_EVERY_LEAF:
        _assert_refused_as_shared(name, arg, rows)
        return
    _, state = _run(_build(name, **{arg: rows}))
    _, plain = _run(_build(name, **{arg: fill}))
    assert jax.tree.map(jnp.shape, state) == jax.tree.map(jnp.shape, plain)


def _one_element_shapes() -> list[Any]:
    """(alias, argument, shape): the newer aliases' rank-2 and rank-3 shapes with the slow set."""
    out = []
    for param in _one_per_argument():
        name, arg = param.values
        for shape in [(1,), (1, 1), (1, 1, 1)]:
            slow = len(shape) > 1 and name in catalog.NEWER_FAMILY
            marks = [pytest.mark.slow] if slow else []
            out.append(
                pytest.param(name, arg, shape, id=f"{param.id}-rank{len(shape)}", marks=marks)
            )
    return out


@pytest.mark.parametrize(("name", "arg", "shape"), _one_element_shapes())
def test_a_one_element_array_is_a_scalar(name: str, arg: str, shape: tuple[int, ...]) -> None:
    fill = 0.5 if arg != "learning_rate" else 1e-2
    params, state = _run(_build(name, **{arg: jnp.full(shape, fill)}))
    expected_params, expected_state = _run(_build(name, **{arg: fill}))
    assert jax.tree.map(jnp.shape, state) == jax.tree.map(jnp.shape, expected_state)
    chex.assert_trees_all_close(params, expected_params, rtol=1e-12)


@pytest.mark.parametrize(("name", "arg"), _numeric_arguments())
def test_a_longer_array_shared_by_every_leaf_is_refused(name: str, arg: str) -> None:
    with pytest.raises(ValueError, match=rf"^{arg} has shape \(2,\): a value shared by every leaf"):
        _build(name, **{arg: jnp.array([0.5, 0.5])})


def test_a_longer_traced_array_is_refused_inside_jit_too() -> None:
    @jax.jit
    def build_and_step(lr):
        optimizer = adamjax.adam(lr)
        return optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)[0]

    with pytest.raises(ValueError, match=r"^learning_rate has shape \(2,\)"):
        build_and_step(jnp.array([1e-3, 1e-3]))
    one = build_and_step(jnp.array([1e-3]))  # one element: a scalar, traced or not
    np.testing.assert_allclose(one["w"], build_and_step(jnp.asarray(1e-3))["w"], rtol=0)


# ----- low-precision arrays, None, NumPy integers ------------------------------------------

# bfloat16 and float8_e4m3fn in the default suite; float16 and float8_e5m2 with the slow set
LOW_DTYPES = [
    jnp.bfloat16,
    ml_dtypes.float8_e4m3fn,
    pytest.param(jnp.float16, marks=pytest.mark.slow),
    pytest.param(ml_dtypes.float8_e5m2, marks=pytest.mark.slow),
]
LOW_DTYPE_IDS = ["bfloat16", "float8_e4m3fn", "float16", "float8_e5m2"]


def _low_precision_cases() -> list[Any]:
    """(alias, argument, dtype): the newer aliases' float8_e4m3fn with the slow set."""
    out = []
    for param in _one_per_argument():
        name, arg = param.values
        for dtype, label in zip(LOW_DTYPES, LOW_DTYPE_IDS, strict=True):
            marks: list[Any] = list(getattr(dtype, "marks", ()))
            value = getattr(dtype, "values", (dtype,))[0]
            if label == "float8_e4m3fn" and name in catalog.NEWER_FAMILY:
                marks.append(pytest.mark.slow)
            out.append(pytest.param(name, arg, value, id=f"{param.id}-{label}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "arg", "dtype"), _low_precision_cases())
def test_low_precision_hyperparameter_arrays_work_eagerly_as_under_jit(name, arg, dtype) -> None:
    fill = 0.5 if arg != "learning_rate" else 2.0**-6
    value = jnp.asarray(fill, dtype)
    eager, _ = _run(_build(name, **{arg: value}))

    @jax.jit
    def traced(v):
        return _run(_build(name, **{arg: v}))[0]

    chex.assert_trees_all_close(eager, traced(value), rtol=1e-12)


# where None is a value with a meaning, as in optax: no momentum, no clipping, a step size of 1
NONE_MEANS_OFF = {
    ("sgd", "momentum"),
    ("rmsprop", "momentum"),
    ("adafactor", "learning_rate"),
    ("adafactor", "clipping_threshold"),
    ("adafactor", "momentum"),
}


@pytest.mark.parametrize(("name", "arg"), _numeric_arguments())
def test_none_for_a_numeric_hyperparameter_is_refused_when_built(name: str, arg: str) -> None:
    if (name, arg) in NONE_MEANS_OFF:
        moved, _ = _run(_build(name, **{arg: None}), steps=1)
        assert not np.allclose(moved["w"], PARAMS["w"])  # builds, and still optimizes
        return
    with pytest.raises(TypeError, match=rf"^{arg} must be a number, an array or a per-leaf tree"):
        _build(name, **{arg: None})


@pytest.mark.parametrize(
    "build",
    [
        lambda n: adamjax.accumulate_gradients(adamjax.adam(), n),
        lambda n: adamjax.skip_nonfinite(adamjax.adam(), n, on_limit="apply"),
        lambda n: adamjax.monitor(every=n),
        lambda n: adamjax.schedules.linear(0.1, 0.0, n),
        lambda n: adamjax.schedules.cosine_decay(0.1, n),
        lambda n: adamjax.schedules.warmup_cosine_decay(0.0, 0.1, n, 2 * n),
        lambda n: adamjax.schedules.exponential_decay(0.1, n, 0.5),
        lambda n: ensemble.hyperparameters(adamjax.adam, n),
        lambda n: sweep.sample(n, 0, learning_rate=sweep.log_uniform(1e-3, 1e-1)),
    ],
    ids=[
        "every_k",
        "max_consecutive_skips",
        "monitor-every",
        "linear",
        "cosine_decay",
        "warmup_cosine_decay",
        "exponential_decay",
        "ensemble-n",
        "sweep-n",
    ],
)
@pytest.mark.parametrize("integer", [np.int32, np.int64, np.uint16])
def test_numpy_integers_are_accepted_where_python_ints_are(build: Callable, integer: type):
    ours, python = build(integer(3)), build(3)
    assert type(ours) is type(python)
    if callable(ours) and not hasattr(ours, "init"):  # a schedule: same values
        counts = jnp.arange(8)
        np.testing.assert_array_equal(jax.vmap(ours)(counts), jax.vmap(python)(counts))


# ----- a zero as a Python number or as an array ---------------------------------------------


def _zero_hyperparameters() -> list[Any]:
    factories = {name: getattr(adamjax, name) for name in [*catalog.ALIASES, *catalog.FAMILY]}
    factories.update({f"presets.{n}": getattr(presets, n) for n in presets.__all__})
    factories.pop("presets.dozat_momentum")
    out = []
    for name, factory in factories.items():
        for arg, parameter in inspect.signature(factory).parameters.items():
            default = parameter.default
            if arg in ("learning_rate", "lr"):
                continue
            if isinstance(default, float) and not isinstance(default, bool):
                out.append(pytest.param(factory, arg, id=f"{name}-{arg}"))
            if name == "sgd" and arg == "momentum":
                out.append(pytest.param(factory, arg, id=f"{name}-{arg}"))
    return out


# arguments whose range excludes zero (a divisor): both zeros are refused, naming the argument
ZERO_REFUSED = {
    "adam_atan2-b",
    "stable_adamw-threshold",
    "schedule_free_adamw-b1",
    "presets.torch_adafactor-d",
}


@pytest.mark.parametrize(("factory", "arg"), _zero_hyperparameters())
def test_state_structure_is_the_same_for_a_python_zero_and_an_array_zero(
    factory, arg, request: pytest.FixtureRequest
) -> None:
    takes = inspect.signature(factory).parameters
    rate = {name: 1e-2 for name in ("lr", "learning_rate") if name in takes}  # blocks take none
    if request.node.callspec.id in ZERO_REFUSED:
        zeros: list[Any] = [0.0, jnp.asarray(0.0)]
        if not request.node.callspec.id.startswith("presets."):
            zeros.append({"w": 0.5, "b": jnp.asarray(0.0)})  # one leaf's zero
        for zero in zeros:
            with pytest.raises(ValueError, match=rf"^{arg}(\['b'\])? must be"):
                factory(**rate, **{arg: zero})
        return
    python_zero = factory(**rate, **{arg: 0.0}).init(PARAMS)
    array_zero = factory(**rate, **{arg: jnp.asarray(0.0)}).init(PARAMS)
    chex.assert_trees_all_equal_structs(python_zero, array_zero)
    chex.assert_trees_all_equal_shapes(python_zero, array_zero)
