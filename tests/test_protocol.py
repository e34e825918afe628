"""The protocol: chains, apply_updates, the building blocks in and out of order."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax

PARAMS = {"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}
GRADS = {"w": jnp.full((2, 3), 0.5, jnp.float32), "b": jnp.full(3, -2.0, jnp.float32)}


def _one_step(transform, params=PARAMS, grads=GRADS):
    state = transform.init(params)
    return transform.update(grads, state, params)


def test_adam_is_the_chain_of_its_blocks() -> None:
    by_alias, _ = _one_step(adamjax.adam(0.1, 0.8, 0.9, 1e-3))
    by_chain, _ = _one_step(
        adamjax.chain(
            adamjax.moments(0.8, 0.9),
            adamjax.bias_correction(),
            adamjax.normalize(1e-3),
            adamjax.scale_by_learning_rate(0.1),
        )
    )
    for key in PARAMS:
        np.testing.assert_array_equal(by_alias[key], by_chain[key])


def test_first_adam_step_is_minus_lr_sign() -> None:
    updates, _ = _one_step(adamjax.adam(0.1))
    np.testing.assert_allclose(updates["w"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["b"], 0.1, rtol=1e-6)


def test_dropping_bias_correction_gives_the_uncorrected_rule() -> None:
    updates, _ = _one_step(
        adamjax.chain(adamjax.moments(0.9, 0.999), adamjax.normalize(0.0), adamjax.scale(1.0))
    )
    # m = 0.1 g, v = 0.001 g^2: m / sqrt(v) = sign(g) * 0.1 / sqrt(0.001)
    np.testing.assert_allclose(updates["b"], -0.1 / np.sqrt(0.001), rtol=1e-5)


def test_moments_emits_moments_and_state_is_namedtuple_of_arrays() -> None:
    estimates, state = _one_step(adamjax.moments(0.9, 0.99))
    assert isinstance(estimates, adamjax.Moments)
    assert isinstance(state, adamjax.MomentsState)
    np.testing.assert_allclose(estimates.mu["b"], 0.1 * -2.0, rtol=1e-6)
    np.testing.assert_allclose(estimates.nu["b"], 0.01 * 4.0, rtol=1e-6)
    assert int(estimates.count) == 1
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))


def test_chain_state_is_a_tuple_of_states() -> None:
    state = adamjax.adam(0.1).init(PARAMS)
    assert isinstance(state, tuple) and len(state) == 4
    assert isinstance(state[0], adamjax.MomentsState)


@pytest.mark.parametrize(
    ("transforms", "message"),
    [
        ([adamjax.normalize()], "moments() must come before normalize()"),
        ([adamjax.bias_correction()], "moments() must come before bias_correction()"),
        ([adamjax.max_second_moment()], "moments() must come before max_second_moment()"),
        (
            [adamjax.moments(), adamjax.scale_by_learning_rate(0.1)],
            "chain() transform 1 (scale_by_learning_rate()) takes gradients",
        ),
        (
            [adamjax.moments(), adamjax.add_decayed_weights(0.1)],
            "chain() transform 1 (add_decayed_weights()) takes gradients",
        ),
        (
            [adamjax.moments(), adamjax.moments()],
            "chain() transform 1 (moments()) takes gradients",
        ),
        (
            [adamjax.moments(), adamjax.bias_correction(), adamjax.bias_correction()],
            "already corrected",
        ),
        (
            [adamjax.sum_of_squares(), adamjax.bias_correction()],
            "running sum of squares",
        ),
    ],
)
def test_wrong_order_names_what_comes_first(transforms, message) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _one_step(adamjax.chain(*transforms))


def test_apply_updates_refuses_moments() -> None:
    estimates, _ = _one_step(adamjax.moments())
    with pytest.raises(TypeError, match="end the chain with normalize"):
        adamjax.apply_updates(PARAMS, estimates)


def test_apply_updates_keeps_param_dtype() -> None:
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(3, jnp.float64)}
    updates = {"a": jnp.full(3, 0.25, jnp.float32), "b": jnp.full(3, 0.25, jnp.float32)}
    out = adamjax.apply_updates(params, updates)
    assert out["a"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(out["b"]), 1.25)


def test_apply_updates_names_the_mismatching_path() -> None:
    with pytest.raises(ValueError, match=r"updates\['extra'\] is not in params"):
        adamjax.apply_updates({"w": jnp.ones(2)}, {"w": jnp.ones(2), "extra": jnp.ones(2)})


def test_chain_rejects_non_transforms() -> None:
    with pytest.raises(TypeError, match="chain\\(\\) argument 1 must have init and update"):
        adamjax.chain(adamjax.scale(1.0), 0.5)


def test_weight_decay_needs_params() -> None:
    opt = adamjax.adamw(0.1)
    state = opt.init(PARAMS)
    with pytest.raises(ValueError, match="add_decayed_weights\\(\\) needs the params"):
        opt.update(GRADS, state)


def test_coupled_and_decoupled_weight_decay_differ_by_position() -> None:
    decoupled, _ = _one_step(adamjax.adamw(0.1, weight_decay=0.5))
    coupled, _ = _one_step(
        adamjax.chain(adamjax.add_decayed_weights(0.5), adamjax.adam(0.1)),
    )
    # decoupled: -lr * (sign(g) + wd * w); coupled: first step is -lr * sign(g + wd * w)
    np.testing.assert_allclose(decoupled["w"], -0.1 * (1.0 + 0.5), rtol=1e-5)
    np.testing.assert_allclose(coupled["w"], -0.1, rtol=1e-5)


def test_weight_decay_mask_tree_and_callable() -> None:
    mask = {"w": True, "b": False}
    by_tree, _ = _one_step(adamjax.adamw(0.1, weight_decay=0.5, mask=mask))
    by_fn, _ = _one_step(
        adamjax.adamw(0.1, weight_decay=0.5, mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p))
    )
    for updates in (by_tree, by_fn):
        np.testing.assert_allclose(updates["w"], -0.15, rtol=1e-5)
        np.testing.assert_allclose(updates["b"], 0.1, rtol=1e-5)


def test_weight_decay_mask_must_match() -> None:
    with pytest.raises(ValueError, match=r"mask\['c'\] is not in params"):
        adamjax.adamw(0.1, mask={"w": True, "b": False, "c": True}).init(PARAMS)
    with pytest.raises(TypeError, match=r"mask\['w'\] must be a bool"):
        adamjax.adamw(0.1, mask={"w": 1.0, "b": False}).init(PARAMS)


def test_grads_with_a_leaf_params_lack_are_named() -> None:
    opt = adamjax.adam(0.1)
    state = opt.init({"encoder": {"w": jnp.ones(2)}})
    grads = {"encoder": {"w": jnp.ones(2), "extra": jnp.ones(2)}}
    with pytest.raises(ValueError, match=r"grads\['encoder'\]\['extra'\] is not in params"):
        opt.update(grads, state)


def test_grads_of_the_wrong_shape_are_named() -> None:
    opt = adamjax.adam(0.1)
    state = opt.init({"w": jnp.ones((2, 3))})
    with pytest.raises(ValueError, match=r"grads\['w'\] has shape \(3, 2\), but params"):
        opt.update({"w": jnp.ones((3, 2))}, state)


def test_integer_params_are_rejected_with_their_path() -> None:
    with pytest.raises(TypeError, match=r"params\['step'\] has dtype int32"):
        adamjax.adam(0.1).init({"w": jnp.ones(2), "step": jnp.zeros((), jnp.int32)})


def test_amsgrad_position_picks_the_convention() -> None:
    grads = [jnp.asarray([3.0]), jnp.asarray([0.1]), jnp.asarray([0.1])]
    paper = adamjax.amsgrad(1.0, eps=0.0)
    torch_like = adamjax.chain(
        adamjax.moments(),
        adamjax.max_second_moment(),
        adamjax.bias_correction(),
        adamjax.normalize(0.0),
        adamjax.scale_by_learning_rate(1.0),
    )
    results = []
    for opt in (paper, torch_like):
        x = jnp.zeros(1)
        state = opt.init(x)
        for g in grads:
            updates, state = opt.update(g, state, x)
        results.append(float(updates[0]))
    assert results[0] != pytest.approx(results[1], rel=1e-3)
