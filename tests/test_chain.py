"""chain(): what flows between transforms, where a gradient transform may sit, nesting, and the
extra arguments of update()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adamjax
from tests.typed import as_optax

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


def test_chain_state_is_a_tuple_of_states() -> None:
    state = adamjax.adam(0.1).init(PARAMS)
    assert isinstance(state, tuple) and len(state) == 4
    assert isinstance(state[0], adamjax.MomentsState)


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


@pytest.mark.usefixtures("standard_promotion")
@pytest.mark.parametrize("name", list(GRADIENT_TRANSFORMS))
def test_the_same_transforms_before_the_estimator_or_after_normalize_compose(name: str) -> None:
    for where in (0, 3):
        stages = [adamjax.moments(), adamjax.bias_correction(), adamjax.normalize()]
        stages.insert(where, GRADIENT_TRANSFORMS[name]())
        optimizer = adamjax.chain(*stages)
        updates, _ = optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)
        chex.assert_tree_all_finite(updates)


def test_a_nested_chain_is_checked_as_what_it_takes_and_emits() -> None:
    front = adamjax.chain(adamjax.moments(), adamjax.bias_correction())
    back = adamjax.chain(adamjax.normalize(), adamjax.scale_by_learning_rate(0.1))
    whole = adamjax.chain(front, back)  # moments in the middle: fine
    ours, _ = whole.update(_grads(0), whole.init(PARAMS), PARAMS)
    plain, _ = adamjax.adam(0.1).update(_grads(0), adamjax.adam(0.1).init(PARAMS), PARAMS)
    chex.assert_trees_all_equal(ours, plain)
    with pytest.raises(TypeError, match=r"^chain\(\) transform 1 \(scale\(\)\)"):
        adamjax.chain(front, optax.scale(2.0), back)


@pytest.mark.usefixtures("standard_promotion")
def test_optax_chain_driving_adamjax_stages_is_caught_where_the_count_was_rewritten() -> None:
    """optax.chain cannot be checked when built; the moments' step count shows the damage."""
    optimizer = optax.chain(
        as_optax(adamjax.moments()), optax.scale(2.0), as_optax(adamjax.normalize())
    )
    with pytest.raises(TypeError, match=r"step count is not an integer.*adamjax.chain\(\)"):
        optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)


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


@pytest.mark.slow
@pytest.mark.usefixtures("standard_promotion")
def test_extra_args_reach_reduce_on_plateau_as_in_optax() -> None:
    def plateau() -> Any:
        return optax.contrib.reduce_on_plateau(factor=0.5, patience=1, cooldown=0)

    ours = _plateau_run(adamjax.chain(adamjax.adam(0.1), plateau()))
    theirs = _plateau_run(optax.chain(optax.adam(0.1), plateau()))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)
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
def test_wrappers_hand_extra_args_on(wrap: Callable[[Any], Any]) -> None:
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
    chex.assert_trees_all_close(updates, expected, rtol=1e-15)
