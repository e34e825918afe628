"""Bad input gets a clear error naming the argument or tree path, before anything changes.

One case per message: each builds or runs a transform the wrong way and checks the exception
type and that the message names what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets, schedules

F32 = jnp.float32
PARAMS = {
    "encoder": {"w": jnp.ones((2, 3), F32), "b": jnp.zeros(3, F32)},
    "head": jnp.ones(3, F32),
}


def _grads(**changes: Any) -> dict:
    grads = {
        "encoder": {"w": jnp.ones((2, 3), F32), "b": jnp.ones(3, F32)},
        "head": jnp.ones(3, F32),
    }
    for key, value in changes.items():
        if key == "extra":
            grads["encoder"]["extra"] = value
        elif key in ("w", "b"):
            grads["encoder"][key] = value
        else:
            grads[key] = value
    return grads


def _update(transform: Any, grads: Any, params: Any = PARAMS) -> Any:
    return transform.update(grads, transform.init(params), params)


def _without(tree: dict, key: str) -> dict:
    return {k: v for k, v in tree.items() if k != key}


def _wrong_order(*transforms: Any) -> Callable[[], Any]:
    return lambda: _update(adamjax.chain(*transforms), _grads())


# (case id) -> (thunk that must raise, exception type, regex the message must match)
CASES: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    # 1. hyperparameters out of range, named
    "b1-out-of-range": (lambda: adamjax.adam(b1=1.0), ValueError, r"^b1 must be in \[0.0, 1.0\)"),
    "b2-negative": (lambda: adamjax.adam(b2=-0.1), ValueError, r"^b2 must be in \[0.0, 1.0\)"),
    "eps-negative": (lambda: adamjax.adam(eps=-1e-8), ValueError, r"^eps must be >= 0.0"),
    "eps-root-negative": (
        lambda: adamjax.adam(eps_root=-1.0),
        ValueError,
        r"^eps_root must be >= 0.0",
    ),
    "learning-rate-negative": (
        lambda: adamjax.adam(-1e-3),
        ValueError,
        r"^learning_rate must be >= 0.0, got -0.001",
    ),
    "learning-rate-nan": (lambda: adamjax.adam(float("nan")), ValueError, r"got nan"),
    "learning-rate-inf": (
        lambda: adamjax.adam(float("inf")),
        ValueError,
        r"^learning_rate must be finite",
    ),
    "weight-decay-negative": (
        lambda: adamjax.adamw(weight_decay=-0.1),
        ValueError,
        r"^weight_decay must be >= 0.0",
    ),
    "torch-weight-decay-negative": (
        lambda: presets.torch_adam(weight_decay=-0.1),
        ValueError,
        r"^weight_decay must be >= 0.0",
    ),
    "per-leaf-hyperparameter-out-of-range": (
        lambda: adamjax.adam(b1={"encoder": {"w": 0.9, "b": 1.5}, "head": 0.9}),
        ValueError,
        r"^b1\['encoder'\]\['b'\] must be in \[0.0, 1.0\), got 1.5",
    ),
    "array-hyperparameter-out-of-range": (
        lambda: adamjax.adam(jnp.array([0.1, -0.2])),
        ValueError,
        r"^learning_rate must be >= 0.0",
    ),
    "hyperparameter-not-a-number": (
        lambda: adamjax.adam("0.1"),
        TypeError,
        r"^learning_rate must be a number or an array",
    ),
    "hyperparameter-complex": (
        lambda: adamjax.adam(b1=0.9 + 0.1j),
        TypeError,
        r"^b1 must be real",
    ),
    "nesterov-without-first-moment": (
        lambda: adamjax.moments(None, nesterov=True),
        ValueError,
        r"nesterov=True needs a first moment: b1 must not be None",
    ),
    "schedule-returns-array": (
        lambda: _update(adamjax.adam(lambda count: jnp.full(3, 0.1)), _grads()),
        ValueError,
        r"learning_rate schedule returned a value of shape \(3,\); a schedule must return a "
        r"scalar",
    ),
    "schedule-returns-negative": (
        lambda: _update(adamjax.adam(lambda count: -0.1), _grads()),
        ValueError,
        r"^learning_rate schedule value must be >= 0.0, got -0.1",
    ),
    "schedule-steps-not-positive": (
        lambda: schedules.cosine_decay(0.1, 0),
        ValueError,
        r"^decay_steps must be a positive int, got 0",
    ),
    "warmup-longer-than-decay": (
        lambda: schedules.warmup_cosine_decay(0.0, 0.1, 100, 50),
        ValueError,
        r"decay_steps \(50\) must be greater than warmup_steps \(100\)",
    ),
    # 1. grads whose tree differs from the state's, in user terms
    "grads-extra-leaf": (
        lambda: _update(adamjax.adam(), _grads(extra=jnp.ones(2))),
        ValueError,
        r"^grads\['encoder'\]\['extra'\] is not in params$",
    ),
    "grads-missing-leaf": (
        lambda: _update(adamjax.adam(), _without(_grads(), "head")),
        ValueError,
        r"^params\['head'\] has no entry in grads$",
    ),
    "grads-other-container": (
        lambda: _update(adamjax.adam(), [jnp.ones(3)], (jnp.ones(3),)),
        ValueError,
        r"^grads has tree structure .*, but params has tree structure",
    ),
    "grads-wrong-shape": (
        lambda: _update(adamjax.adam(), _grads(w=jnp.ones((3, 2)))),
        ValueError,
        r"^grads\['encoder'\]\['w'\] has shape \(3, 2\), but params\['encoder'\]\['w'\] has "
        r"shape \(2, 3\)$",
    ),
    "grads-integer-dtype": (
        lambda: _update(adamjax.adam(), _grads(b=jnp.ones(3, jnp.int32))),
        TypeError,
        r"^grads\['encoder'\]\['b'\] has dtype int32, but state.mu\['encoder'\]\['b'\] has "
        r"dtype float32: grads must be floating-point or complex$",
    ),
    "grads-float0-dtype": (
        lambda: _update(adamjax.adam(), _grads(head=np.zeros(3, jax.dtypes.float0))),
        TypeError,
        r"^grads\['head'\] has dtype float0, but state.mu\['head'\] has dtype float32",
    ),
    "grads-complex-for-real-params": (
        lambda: _update(adamjax.adam(), _grads(head=jnp.ones(3, jnp.complex64))),
        TypeError,
        r"^grads\['head'\] has dtype complex64, but state.mu\['head'\] has dtype float32: "
        r"complex grads need a complex parameter$",
    ),
    "grads-integer-without-first-moment": (
        lambda: _update(adamjax.rmsprop(), _grads(head=jnp.ones(3, jnp.int32))),
        TypeError,
        r"^grads\['head'\] has dtype int32, but state.nu\['head'\] has dtype float32",
    ),
    "momentum-grads-complex": (
        lambda: _update(adamjax.sgd(0.1, 0.9), _grads(head=jnp.ones(3, jnp.complex64))),
        TypeError,
        r"^grads\['head'\] has dtype complex64, but state.trace\['head'\] has dtype float32",
    ),
    "integer-params": (
        lambda: adamjax.adam().init({"w": jnp.ones(3), "steps": jnp.zeros((), jnp.int32)}),
        TypeError,
        r"^params\['steps'\] has dtype int32; adamjax optimizes floating-point and complex "
        r"leaves only",
    ),
    "bool-params": (
        lambda: adamjax.adamw().init({"w": jnp.ones(3), "on": jnp.ones(3, jnp.bool_)}),
        TypeError,
        r"^params\['on'\] has dtype bool",
    ),
    "per-leaf-hyperparameter-missing-leaf": (
        lambda: _update(adamjax.adam(b1={"encoder": {"w": 0.9}, "head": 0.9}), _grads()),
        ValueError,
        r"^params\['encoder'\]\['b'\] has no entry in b1$",
    ),
    "per-leaf-hyperparameter-leaf-for-a-subtree": (
        lambda: _update(adamjax.adam(b1={"encoder": 0.9, "head": 0.9}), _grads()),
        ValueError,
        r"^b1\['encoder'\] is a single leaf, but params\['encoder'\] is a subtree \(holding "
        r"params\['encoder'\]\['b'\]\)$",
    ),
    "grads-subtree-for-a-leaf": (
        lambda: _update(adamjax.adam(), _grads(head={"a": jnp.ones(3, F32)})),
        ValueError,
        r"^grads\['head'\] is a subtree \(holding grads\['head'\]\['a'\]\), but "
        r"params\['head'\] is a single leaf$",
    ),
    "apply-updates-extra-leaf": (
        lambda: adamjax.apply_updates(PARAMS, _grads(extra=jnp.ones(2))),
        ValueError,
        r"^updates\['encoder'\]\['extra'\] is not in params$",
    ),
    "apply-updates-complex-into-real": (
        lambda: adamjax.apply_updates(PARAMS, _grads(head=jnp.ones(3, jnp.complex64))),
        TypeError,
        r"^updates\['head'\] has dtype complex64, but params\['head'\] has dtype float32",
    ),
    # 1. wrong chain order
    "normalize-before-moments": (
        _wrong_order(adamjax.normalize(), adamjax.moments()),
        TypeError,
        r"^normalize\(\) takes moment estimates but received a gradient tree: a moment "
        r"estimator such as moments\(\) must come before normalize\(\)",
    ),
    "bias-correction-first": (
        _wrong_order(adamjax.bias_correction(), adamjax.moments()),
        TypeError,
        r"^chain\(\) transform 1 \(moments\(\)\) takes gradients or updates, but transform 0 "
        r"\(bias_correction\(\)\) takes moment estimates and passes them on",
    ),
    "max-second-moment-first": (
        _wrong_order(adamjax.max_second_moment(), adamjax.moments()),
        TypeError,
        r"^chain\(\) transform 1 \(moments\(\)\) takes gradients or updates, but transform 0 "
        r"\(max_second_moment\(\)\)",
    ),
    "learning-rate-before-normalize": (
        _wrong_order(adamjax.moments(), adamjax.scale_by_learning_rate(0.1)),
        TypeError,
        r"^chain\(\) transform 1 \(scale_by_learning_rate\(\)\) takes gradients or updates, but "
        r"from transform 0 \(moments\(\)\) on the chain carries moment estimates. Place it before "
        r"the moment estimator, or after normalize\(\)",
    ),
    "weight-decay-before-normalize": (
        _wrong_order(adamjax.moments(), adamjax.add_decayed_weights(0.1)),
        TypeError,
        r"^chain\(\) transform 1 \(add_decayed_weights\(\)\) takes gradients or updates",
    ),
    "two-moment-estimators": (
        _wrong_order(adamjax.moments(), adamjax.moments()),
        TypeError,
        r"^chain\(\) transform 1 \(moments\(\)\) takes gradients or updates, but from transform 0",
    ),
    "bias-correction-twice": (
        _wrong_order(adamjax.moments(), adamjax.bias_correction(), adamjax.bias_correction()),
        TypeError,
        r"^bias_correction\(\) received moments that are already corrected",
    ),
    "bias-correction-of-a-sum": (
        _wrong_order(adamjax.sum_of_squares(), adamjax.bias_correction()),
        TypeError,
        r"^bias_correction\(\) applies to moving averages",
    ),
    "max-of-an-infinity-norm": (
        _wrong_order(adamjax.infinity_moments(), adamjax.max_second_moment()),
        TypeError,
        r"^max_second_moment\(\) takes a moving average of squared gradients, got "
        r"infinity_norm moments",
    ),
    "apply-moments": (
        lambda: adamjax.apply_updates(PARAMS, _update(adamjax.moments(), _grads())[0]),
        TypeError,
        r"^apply_updates\(\) received moment estimates: end the chain with normalize\(\)",
    ),
    "chain-of-a-non-transform": (
        lambda: adamjax.chain(adamjax.moments(), 0.1),
        TypeError,
        r"^chain\(\) argument 1 must have init and update methods, got float",
    ),
    "chain-state-of-another-optimizer": (
        lambda: adamjax.adam().update(_grads(), adamjax.adamw().init(PARAMS), PARAMS),
        ValueError,
        r"^chain of 4 transforms got a state that is not a tuple of 4 states",
    ),
    # 1. weight decay: missing params, mask
    "weight-decay-without-params": (
        lambda: adamjax.adamw().update(_grads(), adamjax.adamw().init(PARAMS)),
        ValueError,
        r"^add_decayed_weights\(\) needs the params: call update\(grads, state, params\)",
    ),
    "mask-extra-leaf": (
        lambda: adamjax.adamw(
            mask={"encoder": {"w": True, "b": False, "x": True}, "head": True}
        ).init(PARAMS),
        ValueError,
        r"^mask\['encoder'\]\['x'\] is not in params$",
    ),
    "mask-missing-leaf": (
        lambda: adamjax.adamw(mask={"encoder": {"w": True, "b": False}}).init(PARAMS),
        ValueError,
        r"^params\['head'\] has no entry in mask$",
    ),
    "mask-not-bool": (
        lambda: adamjax.adamw(mask={"encoder": {"w": 1, "b": 0}, "head": 1}).init(PARAMS),
        TypeError,
        r"^mask\['encoder'\]\['b'\] must be a bool \(True: decay this leaf\), got 0",
    ),
    "callable-mask-of-wrong-structure": (
        lambda: adamjax.adamw(mask=lambda p: {"head": True}).init(PARAMS),
        ValueError,
        r"^params\['encoder'\]\['b'\] has no entry in mask$",
    ),
    # 2. skip_nonfinite
    "skip-nonfinite-inner-not-a-transform": (
        lambda: adamjax.skip_nonfinite(0.1),  # type: ignore[arg-type]
        TypeError,
        r"^skip_nonfinite\(\) inner must have init and update methods, got float",
    ),
    "skip-nonfinite-negative-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), max_consecutive_skips=-1),
        ValueError,
        r"^max_consecutive_skips must be None or an int >= 0, got -1",
    ),
    "skip-nonfinite-float-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), max_consecutive_skips=2.5),  # type: ignore[arg-type]
        ValueError,
        r"^max_consecutive_skips must be None or an int >= 0, got 2.5",
    ),
    "skip-nonfinite-on-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), 3, on_limit="raise"),  # type: ignore[arg-type]
        ValueError,
        r'^on_limit must be "skip" or "apply", got \'raise\'',
    ),
    "skip-nonfinite-bare-state": (
        lambda: adamjax.skip_nonfinite(adamjax.adam()).update(
            _grads(), adamjax.adam().init(PARAMS), PARAMS
        ),
        TypeError,
        r"^skip_nonfinite\(\) takes the SkipNonfiniteState its init returned, got tuple",
    ),
    # 3. accumulate_gradients
    "accumulate-every-k-zero": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(), 0),
        ValueError,
        r"^every_k must be an int >= 1, got 0",
    ),
    "accumulate-inner-not-a-transform": (
        lambda: adamjax.accumulate_gradients(None, 2),  # type: ignore[arg-type]
        TypeError,
        r"^accumulate_gradients\(\) inner must have init and update methods, got NoneType",
    ),
    "accumulate-grads-extra-leaf": (
        lambda: _update(adamjax.accumulate_gradients(adamjax.adam(), 2), _grads(extra=jnp.ones(2))),
        ValueError,
        r"^grads\['encoder'\]\['extra'\] is not in params$",
    ),
    "accumulate-grads-wrong-shape": (
        lambda: _update(adamjax.accumulate_gradients(adamjax.adam(), 2), _grads(head=jnp.ones(4))),
        ValueError,
        r"^grads\['head'\] has shape \(4,\), but params\['head'\] has shape \(3,\)$",
    ),
    "accumulate-bare-state": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(), 2).update(
            _grads(), adamjax.adam().init(PARAMS), PARAMS
        ),
        TypeError,
        r"^accumulate_gradients\(\) takes the AccumulateState its init returned, got tuple",
    ),
    # 6. lazy_adam
    "lazy-adam-b2-out-of-range": (
        lambda: adamjax.lazy_adam(b2=1.0),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got 1.0",
    ),
    "lazy-adam-grads-wrong-shape": (
        lambda: _update(adamjax.lazy_adam(), _grads(w=jnp.ones((2, 4)))),
        ValueError,
        r"^grads\['encoder'\]\['w'\] has shape \(2, 4\), but params\['encoder'\]\['w'\] has "
        r"shape \(2, 3\)$",
    ),
    "lazy-adam-mask-mismatch": (
        lambda: adamjax.lazy_adam(mask={"encoder": {"w": True}, "head": False}).init(PARAMS),
        ValueError,
        r"^params\['encoder'\]\['b'\] has no entry in mask$",
    ),
    "lazy-adam-callable-mask-without-params": (
        lambda: adamjax.lazy_adam(mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p)).update(
            _grads(), adamjax.lazy_adam().init(PARAMS)
        ),
        ValueError,
        r"^lazy_adam\(\) with a callable mask needs the params",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_message(case: str) -> None:
    thunk, exception, pattern = CASES[case]
    with pytest.raises(exception) as info:
        thunk()
    assert re.search(pattern, str(info.value)), str(info.value)


# --- 4. checkpoints: restoring into the wrong structure names the mismatch ----------------------


def _saved(tmp_path: Path) -> tuple[Path, Any]:
    optimizer = adamjax.adam(1e-3)
    tree = {"params": PARAMS, "opt_state": optimizer.init(PARAMS)}
    path = tmp_path / "checkpoint.npz"
    adamjax.save_checkpoint(path, tree)
    return path, tree


def test_restore_names_a_path_missing_from_the_checkpoint(tmp_path: Path) -> None:
    path, tree = _saved(tmp_path)
    target = {"params": PARAMS, "opt_state": adamjax.amsgrad().init(PARAMS)}
    with pytest.raises(ValueError, match=r"^target\['opt_state'\]\[2\]\.nu_max\['encoder'\]"):
        adamjax.restore_checkpoint(path, target)
    del tree


def test_restore_names_a_path_the_target_lacks(tmp_path: Path) -> None:
    path, tree = _saved(tmp_path)
    with pytest.raises(
        ValueError, match=r"holds \['opt_state'\]\[0\]\.count, which is not in the target$"
    ):
        adamjax.restore_checkpoint(path, {"params": tree["params"]})


def test_restore_names_a_shape_mismatch(tmp_path: Path) -> None:
    path, tree = _saved(tmp_path)
    params = dict(PARAMS, head=jnp.ones(4))
    target = {"params": params, "opt_state": adamjax.adam().init(params)}
    with pytest.raises(
        ValueError,
        match=r"^checkpoint\['opt_state'\]\[0\]\.mu\['head'\] has shape \(3,\), but "
        r"target\['opt_state'\]\[0\]\.mu\['head'\] has shape \(4,\)$",
    ):
        adamjax.restore_checkpoint(path, target)
    del tree


def test_restore_names_a_dtype_mismatch(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), PARAMS)
    target = {"params": params, "opt_state": adamjax.adam().init(params)}
    with pytest.raises(
        ValueError,
        match=r"^checkpoint\['opt_state'\]\[0\]\.mu\['encoder'\]\['b'\] has dtype float32, but "
        r"target\['opt_state'\]\[0\]\.mu\['encoder'\]\['b'\] has dtype bfloat16$",
    ):
        adamjax.restore_checkpoint(path, target)


def test_restore_rejects_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3))
    with pytest.raises(ValueError, match=r"is not a checkpoint written by save_checkpoint$"):
        adamjax.restore_checkpoint(path, {"w": jnp.ones(3)})
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"is not a checkpoint written by save_checkpoint$"):
        adamjax.restore_checkpoint(junk, {"w": jnp.ones(3)})


def test_save_rejects_a_leaf_that_is_not_an_array(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^tree\['name'\] is not an array: 'adam'$"):
        adamjax.save_checkpoint(tmp_path / "x.npz", {"w": jnp.ones(3), "name": "adam"})


class _Twins:
    """A pytree node that (wrongly) gives both of its children the same key."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


jax.tree_util.register_pytree_with_keys(
    _Twins,
    lambda t: (((jax.tree_util.GetAttrKey("x"), t.a), (jax.tree_util.GetAttrKey("x"), t.b)), None),
    lambda _, children: _Twins(*children),
)


def test_save_rejects_two_leaves_with_the_same_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^two leaves of the tree have the same path \.x$"):
        adamjax.save_checkpoint(tmp_path / "x.npz", _Twins(jnp.ones(1), jnp.ones(1)))


# --- before anything changes -----------------------------------------------------------------


def test_bad_grads_raise_at_trace_time_and_donated_state_survives() -> None:
    """The check runs while tracing, so a donated state is never consumed by a failing step."""
    optimizer = adamjax.adamw(0.1)
    state = optimizer.init(PARAMS)
    before = jax.tree.map(np.array, state)

    @jax.jit
    def step(grads: Any, state: Any) -> Any:
        return optimizer.update(grads, state, PARAMS)

    donating = jax.jit(step, donate_argnums=(1,))
    with pytest.raises(ValueError, match=r"grads\['encoder'\]\['extra'\] is not in params"):
        donating(_grads(extra=jnp.ones(2)), state)
    for leaf, saved in zip(jax.tree.leaves(state), jax.tree.leaves(before), strict=True):
        assert not leaf.is_deleted()
        np.testing.assert_array_equal(np.asarray(leaf), saved)
    # the same state still works afterwards
    _, new_state = donating(_grads(), state)
    assert int(new_state[0].count) == 1


def test_restore_failure_leaves_the_target_untouched(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    params = dict(PARAMS, head=jnp.full(4, 7.0))
    target = {"params": params, "opt_state": adamjax.adam().init(params)}
    with pytest.raises(ValueError):
        adamjax.restore_checkpoint(path, target)
    np.testing.assert_array_equal(target["params"]["head"], np.full(4, 7.0))


def test_float64_grads_for_float32_params_are_accepted() -> None:
    """Precision may differ: only the kind (float/complex) of a gradient is checked."""
    grads = jax.tree.map(lambda g: g.astype(jnp.float64), _grads())
    updates, state = _update(adamjax.adam(0.1), grads)
    assert state[0].mu["head"].dtype == jnp.float32
    assert updates["head"].dtype == jnp.float64
    assert adamjax.apply_updates(PARAMS, updates)["head"].dtype == jnp.float32
