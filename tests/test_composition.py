"""The composition contract: what flows between transforms, extra arguments, and calls that
run in both adamjax and optax meaning the same thing."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from adamjax import _aliases as aliases
from adamjax import presets


@pytest.fixture(autouse=True)
def _standard_promotion():
    """optax relies on implicit promotion, which the suite's strict mode rejects."""
    with jax.numpy_dtype_promotion("standard"):
        yield


PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def _grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2))}


class _Foreign:
    """A gradient transform written by a user: it knows nothing of adamjax."""

    def init(self, params: Any) -> tuple[()]:
        return ()

    def update(self, updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        return jax.tree.map(lambda u: 0.5 * u, updates), state


# transforms that take gradients: none of them may sit between moments() and normalize()
GRADIENT_TRANSFORMS: dict[str, Callable[[], Any]] = {
    "optax.scale": lambda: optax.scale(2.0),
    "optax.clip": lambda: optax.clip(1.0),
    "optax.clip_by_global_norm": lambda: optax.clip_by_global_norm(1.0),
    "optax.identity": optax.identity,
    "optax.trace": lambda: optax.trace(0.9),
    "user transform": _Foreign,
    "adamjax.scale": lambda: adamjax.scale(2.0),
    "adamjax.clip": lambda: adamjax.clip(1.0),
    "adamjax.clip_by_global_norm": lambda: adamjax.clip_by_global_norm(1.0),
    "adamjax.trace": lambda: adamjax.trace(0.9),
    "adamjax.adam": lambda: adamjax.adam(0.1),
    "adamjax.skip_nonfinite": lambda: adamjax.skip_nonfinite(adamjax.sgd(0.1)),
}


@pytest.mark.parametrize("name", list(GRADIENT_TRANSFORMS))
@pytest.mark.parametrize("where", [1, 2])
def test_a_gradient_transform_among_the_moments_stages_is_refused_naming_its_position(
    name: str, where: int
) -> None:
    stages = [adamjax.moments(), adamjax.bias_correction(), adamjax.normalize()]
    stages.insert(where, GRADIENT_TRANSFORMS[name]())
    with pytest.raises(TypeError) as error:
        adamjax.chain(*stages)
    message = str(error.value)
    assert message.startswith(f"chain() transform {where} (")
    assert "takes gradients or updates" in message
    assert "from transform 0 (moments())" in message
    assert "before the moment estimator, or after normalize()" in message


@pytest.mark.parametrize("name", list(GRADIENT_TRANSFORMS))
def test_the_same_transforms_before_the_estimator_or_after_normalize_compose(name: str) -> None:
    for where in (0, 3):
        stages = [adamjax.moments(), adamjax.bias_correction(), adamjax.normalize()]
        stages.insert(where, GRADIENT_TRANSFORMS[name]())
        optimizer = adamjax.chain(*stages)
        updates, _ = optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_a_nested_chain_is_checked_as_what_it_takes_and_emits() -> None:
    front = adamjax.chain(adamjax.moments(), adamjax.bias_correction())
    back = adamjax.chain(adamjax.normalize(), adamjax.scale_by_learning_rate(0.1))
    whole = adamjax.chain(front, back)  # moments in the middle: fine
    ours, _ = whole.update(_grads(0), whole.init(PARAMS), PARAMS)
    plain, _ = adamjax.adam(0.1).update(_grads(0), adamjax.adam(0.1).init(PARAMS), PARAMS)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=r"^chain\(\) transform 1 \(scale\(\)\)"):
        adamjax.chain(front, optax.scale(2.0), back)


def test_optax_chain_driving_adamjax_stages_is_caught_where_the_count_was_rewritten() -> None:
    """optax.chain cannot be checked when built; the moments' step count shows the damage."""
    optimizer = optax.chain(adamjax.moments(), optax.scale(2.0), adamjax.normalize())
    with pytest.raises(TypeError, match=r"step count is not an integer.*adamjax.chain\(\)"):
        optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)


@pytest.mark.parametrize(
    "wrapper",
    [
        lambda inner: adamjax.skip_nonfinite(inner),
        lambda inner: adamjax.accumulate_gradients(inner, 2),
        lambda inner: adamjax.partition({"a": inner}, {"w": "a", "b": "a"}),
    ],
    ids=["skip_nonfinite", "accumulate_gradients", "partition"],
)
def test_wrappers_refuse_an_inner_chain_that_stops_at_moments(wrapper: Callable) -> None:
    with pytest.raises(TypeError, match=r"emits moment estimates; it must emit updates"):
        wrapper(adamjax.chain(adamjax.moments(), adamjax.bias_correction()))
    with pytest.raises(TypeError, match=r"takes moment estimates; it must take gradients"):
        wrapper(adamjax.chain(adamjax.normalize(), adamjax.scale_by_learning_rate(0.1)))


# ----- extra arguments ---------------------------------------------------------------------


def _plateau_run(optimizer: Any, steps: int = 12) -> list[dict[str, jax.Array]]:
    """Steps with a loss that stops improving, so reduce_on_plateau does cut the scale."""
    params = PARAMS
    state = optimizer.init(params)
    out = []
    for step in range(steps):
        loss = jnp.asarray(max(1.0 - 0.1 * step, 0.5))
        updates, state = optimizer.update(_grads(step), state, params, value=loss)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def test_extra_args_reach_reduce_on_plateau_as_in_optax() -> None:
    def plateau() -> Any:
        return optax.contrib.reduce_on_plateau(factor=0.5, patience=1, cooldown=0)

    ours = _plateau_run(adamjax.chain(adamjax.adam(0.1), plateau()))
    theirs = _plateau_run(optax.chain(optax.adam(0.1), plateau()))
    for a, b in zip(ours, theirs, strict=True):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7)
    # the plateau did cut the learning rate: the last steps are shorter than plain Adam's
    plain = _plateau_run(adamjax.chain(adamjax.adam(0.1)))
    assert not np.allclose(ours[-1]["w"], plain[-1]["w"])


@pytest.mark.parametrize(
    "wrap",
    [
        lambda t: adamjax.skip_nonfinite(t),
        lambda t: adamjax.accumulate_gradients(t, 1),
        lambda t: adamjax.partition({"all": t}, {"w": "all", "b": "all"}),
        lambda t: adamjax.chain(adamjax.chain(t)),
    ],
    ids=["skip_nonfinite", "accumulate_gradients", "partition", "nested-chain"],
)
def test_wrappers_hand_extra_args_on(wrap: Callable) -> None:
    seen: list[Any] = []

    class Spy:
        def init(self, params: Any) -> tuple[()]:
            return ()

        def update(self, updates: Any, state: Any, params: Any = None, *, value: Any) -> Any:
            seen.append(value)
            return updates, state

    optimizer = wrap(adamjax.chain(adamjax.sgd(0.1), Spy()))
    optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS, value=3.0, other="ignored")
    assert seen and set(seen) == {3.0}  # traced once or more (accumulate also traces shapes)


def test_a_transform_that_names_no_extras_gets_none() -> None:
    optimizer = adamjax.chain(adamjax.sgd(0.1), _Foreign())
    updates, _ = optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS, value=1.0)
    expected = jax.tree.map(lambda g: -0.05 * g, _grads(0))
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-15)


# ----- calls that run in both libraries ----------------------------------------------------


def _trajectory(optimizer: Any, steps: int = 20) -> list[np.ndarray]:
    params = PARAMS
    state = optimizer.init(params)
    out = []
    for step in range(steps):
        updates, state = optimizer.update(_grads(step), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(params)]))
    return out


# the same positional call in both libraries: it must mean the same thing
SAME_CALL: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]]] = {
    "adam all positional": ("adam", (1e-2, 0.8, 0.95, 1e-6, 1e-4, jnp.float32), {}),
    "adamw eps_root fifth": ("adamw", (1e-2, 0.9, 0.999, 1e-8, 1e-2), {}),
    "adamw all positional": (
        "adamw",
        (1e-2, 0.9, 0.999, 1e-8, 0.0, None, 1e-2, {"w": True, "b": False}),
        {},
    ),
    "adamw nesterov": ("adamw", (1e-2,), {"weight_decay": 0.1, "nesterov": True}),
    "adam nesterov": ("adam", (1e-2,), {"nesterov": True}),
    "adamw weight decay schedule": (
        "adamw",
        (1e-2,),
        {"weight_decay": optax.linear_schedule(0.5, 0.0, 10)},
    ),
    "add_decayed_weights schedule": (
        "add_decayed_weights",
        (optax.exponential_decay(0.5, 4, 0.5),),
        {},
    ),
    "amsgrad positional": ("amsgrad", (1e-2, 0.9, 0.99, 1e-8, 1e-8), {}),
    "nadam positional": ("nadam", (1e-2, 0.9, 0.99, 1e-8, 1e-8), {}),
    "nadam nesterov": ("nadam", (1e-2,), {"nesterov": True}),
    "amsgrad corrections": ("amsgrad", (1e-2, 0.9, 0.99, 1e-8, 0.0, None, True, True), {}),
    "scale step_size": ("scale", (), {"step_size": -0.5}),
    "adamax positional": ("adamax", (1e-2, 0.8, 0.9, 1e-6), {}),
    "sgd": ("sgd", (1e-2,), {}),
    "sgd momentum None": ("sgd", (1e-2, None), {}),
    "sgd momentum zero": ("sgd", (1e-2, 0.0), {}),
    "sgd nesterov positional": ("sgd", (1e-2, 0.9, True), {}),
    "sgd accumulator dtype": ("sgd", (1e-2, 0.9, False, jnp.float32), {}),
    "rmsprop defaults": ("rmsprop", (1e-2,), {}),
    "rmsprop all positional": (
        "rmsprop",
        (1e-2, 0.8, 1e-6, 0.0, False, False, 0.5, True, True),
        {},
    ),
    "adagrad defaults": ("adagrad", (1e-1,), {}),
    "adagrad positional": ("adagrad", (1e-1, 0.5, 1e-6), {}),
    "add_decayed_weights default": ("add_decayed_weights", (), {}),
    "trace positional": ("trace", (0.9, True, jnp.float32), {}),
    "scale": ("scale", (-0.5,), {}),
    "clip": ("clip", (0.5,), {}),
    "clip_by_global_norm": ("clip_by_global_norm", (0.5,), {}),
}


@pytest.mark.parametrize("case", list(SAME_CALL))
def test_a_call_that_runs_in_both_libraries_means_the_same(case: str) -> None:
    name, args, kwargs = SAME_CALL[case]
    ours = getattr(adamjax, name)(*args, **kwargs)
    theirs = getattr(optax, name)(*args, **kwargs)
    if name in ("add_decayed_weights", "trace", "scale", "clip", "clip_by_global_norm"):
        ours = adamjax.chain(ours, adamjax.sgd(0.1))
        theirs = optax.chain(theirs, optax.sgd(0.1))
    a, b = _trajectory(ours), _trajectory(theirs)
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7, err_msg=f"step {step + 1}")
    assert not np.allclose(a[-1], a[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: adamjax.rmsprop(1e-2, centered=True), r"centered=True\) is not available"),
        (lambda: adamjax.rmsprop(1e-2, initial_scale=1.0), "initial_scale=1.0"),
        (lambda: adamjax.sgd(1e-2, nesterov=True), "optax ignores nesterov"),
        (lambda: adamjax.rmsprop(1e-2, nesterov=True), "optax ignores nesterov"),
        (lambda: adamjax.amsgrad(1e-2, bias_correction_nu=False), "bias_correction_nu=False"),
        (lambda: adamjax.nadam(1e-2, nesterov=False), r"nadam\(nesterov=False\) is Adam"),
        (
            lambda: adamjax.partition(
                {"a": adamjax.sgd(0.1)}, {"w": "a", "b": "a"}, mask_compatible_extra_args=True
            ),
            "mask_compatible_extra_args=True",
        ),
    ],
)
def test_optax_options_adamjax_lacks_fail_saying_the_difference(call: Callable, message: str):
    with pytest.raises(ValueError, match=message):
        call()


def _positional_count(function: Callable) -> int:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(function).parameters.values())


FAMILY = ("radam", "adabelief", "yogi", "lion", "nadamw", "adamaxw")


@pytest.mark.parametrize("name", sorted({*aliases.__all__, *FAMILY} & set(dir(optax))))
def test_aliases_take_no_more_positional_arguments_than_optax_in_the_same_order(name: str):
    ours, theirs = getattr(adamjax, name), getattr(optax, name)
    count = _positional_count(ours)
    assert count <= _positional_count(theirs)
    ours_names = list(inspect.signature(ours).parameters)[:count]
    assert ours_names == list(inspect.signature(theirs).parameters)[:count]


# ----- state structure independent of the kind of zero --------------------------------------


def _zero_hyperparameters() -> list[Any]:
    factories = {name: getattr(adamjax, name) for name in [*aliases.__all__, *FAMILY]}
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


@pytest.mark.parametrize(("factory", "arg"), _zero_hyperparameters())
def test_state_structure_is_the_same_for_a_python_zero_and_an_array_zero(factory, arg) -> None:
    rate = "lr" if "lr" in inspect.signature(factory).parameters else "learning_rate"
    python_zero = factory(**{rate: 1e-2, arg: 0.0}).init(PARAMS)
    array_zero = factory(**{rate: 1e-2, arg: jnp.asarray(0.0)}).init(PARAMS)
    assert jax.tree.structure(python_zero) == jax.tree.structure(array_zero)
    shapes = jax.tree.map(jnp.shape, python_zero), jax.tree.map(jnp.shape, array_zero)
    assert shapes[0] == shapes[1]


# ----- clipping ----------------------------------------------------------------------------


def _mixed_tree(seed: int, scale: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "a": jnp.asarray(scale * rng.normal(size=(5, 3))),
        "b": [jnp.asarray(scale * rng.normal(size=7)), jnp.asarray(scale * rng.normal(size=()))],
        "c": jnp.asarray(scale * rng.normal(size=4), jnp.float32),
        "z": jnp.asarray(scale * (rng.normal(size=3) + 1j * rng.normal(size=3))),
    }


@pytest.mark.parametrize("scale", [1e-3, 0.3, 1.0, 30.0])
@pytest.mark.parametrize("limit", [0.5, 2.0])
def test_clip_by_global_norm_is_bitwise_optax(scale: float, limit: float) -> None:
    tree = _mixed_tree(0, scale)
    ours, _ = adamjax.clip_by_global_norm(limit).update(tree, adamjax.EmptyState())
    theirs, _ = optax.clip_by_global_norm(limit).update(tree, optax.EmptyState())
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    # and against the definition, in float64
    leaves = [np.asarray(x, np.complex128) for x in jax.tree.leaves(tree)]
    norm = np.sqrt(sum(np.sum(np.abs(x) ** 2) for x in leaves))
    factor = 1.0 if norm < limit else limit / norm
    for a, x in zip(jax.tree.leaves(ours), leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a, np.complex128), factor * x, rtol=1e-6)
    np.testing.assert_allclose(float(adamjax.global_norm(tree)), norm, rtol=1e-6)


@pytest.mark.parametrize("delta", [0.1, 1.0])
def test_clip_is_bitwise_optax(delta: float) -> None:
    tree = {k: v for k, v in _mixed_tree(1, 1.0).items() if k != "z"}
    ours, _ = adamjax.clip(delta).update(tree, adamjax.EmptyState())
    theirs, _ = optax.clip(delta).update(tree, optax.EmptyState())
    for a, b, x in zip(
        jax.tree.leaves(ours), jax.tree.leaves(theirs), jax.tree.leaves(tree), strict=True
    ):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, np.clip(np.asarray(x), -delta, delta))


def test_clip_by_global_norm_before_adamw_matches_optax_under_jit() -> None:
    ours = adamjax.chain(adamjax.clip_by_global_norm(1.0), adamjax.adamw(1e-2, weight_decay=0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.1))
    big = [jax.tree.map(lambda g: 10.0 * g, _grads(s)) for s in range(10)]

    def run(optimizer: Any) -> Any:
        @jax.jit
        def step(params, state, grads):
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params, state = PARAMS, optimizer.init(PARAMS)
        for g in big:
            params, state = step(params, state, g)
        return params

    a, b = run(ours), run(theirs)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: adamjax.clip_by_global_norm(0.0), ValueError, "max_norm must be > 0"),
        (lambda: adamjax.clip_by_global_norm(-1.0), ValueError, r"max_norm must be >= 0.0"),
        (lambda: adamjax.clip_by_global_norm({"w": 1.0}), ValueError, "not a per-leaf tree"),
        (lambda: adamjax.clip(-1.0), ValueError, r"max_delta must be >= 0.0"),
        (lambda: adamjax.clip(None), TypeError, "max_delta must be a number"),
    ],
)
def test_clip_arguments_are_checked(call: Callable, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
