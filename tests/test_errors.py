"""Bad input gets a clear error naming the argument or tree path, before anything changes.

The suite's one table of error messages, one case per message: each case builds or runs a
transform the wrong way and checks the exception type and that the message names what is wrong.
Errors that only a namespace of its own raises (schedules, presets, flat, ensemble, sweep,
shardings, checkpoint files) are checked beside that namespace's other tests.
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
from adamjax import presets
from tests.typed import unchecked

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


TWO_LEAVES = {"a": jnp.ones(2), "b": jnp.ones(3)}
W = {"w": jnp.ones(3)}
_ONE_AND_EXTRA = {"w": jnp.ones(2), "extra": jnp.ones(1)}


def _chain_ending_in_moments() -> Any:
    return adamjax.chain(adamjax.moments(), adamjax.bias_correction())


def _chain_starting_at_moments() -> Any:
    return adamjax.chain(adamjax.normalize(), adamjax.scale_by_learning_rate(0.1))


def _stepped_state(optimizer: Any) -> Any:
    """The first stage's state after one step on {"w": [1, -2]}."""
    params = {"w": jnp.ones(2)}
    return optimizer.update({"w": jnp.array([1.0, -2.0])}, optimizer.init(params), params)[1][0]


# (case id) -> (thunk that must raise, exception type, regex the message must match)
CASES: dict[str, tuple[Callable[[], Any], type[Exception], str]] = {
    # hyperparameters out of range, named
    "b1-out-of-range": (
        lambda: adamjax.adam(b1=1.0),
        ValueError,
        r"^b1 must be in \[0.0, 1.0\), got 1.0$",
    ),
    "b1-negative": (
        lambda: adamjax.adam(0.1, b1=-0.1),
        ValueError,
        r"^b1 must be in \[0.0, 1.0\), got -0.1$",
    ),
    "b2-negative": (
        lambda: adamjax.adam(b2=-0.1),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got -0.1$",
    ),
    "b2-above-one": (
        lambda: adamjax.adam(0.1, b2=1.5),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got 1.5$",
    ),
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
    "learning-rate-nan": (
        lambda: adamjax.adam(float("nan")),
        ValueError,
        r"^learning_rate must be >= 0.0, got nan$",
    ),
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
    "momentum-negative": (
        lambda: adamjax.sgd(0.1, momentum=-0.5),
        ValueError,
        r"^momentum must be >= 0.0, got -0.5$",
    ),
    "rmsprop-decay-one": (
        lambda: adamjax.rmsprop(0.1, decay=1.0),
        ValueError,
        r"^decay must be in \[0.0, 1.0\), got 1.0$",
    ),
    "adagrad-initial-accumulator-negative": (
        lambda: adamjax.adagrad(0.1, initial_accumulator_value=-1.0),
        ValueError,
        r"^initial_accumulator_value must be >= 0.0, got -1.0$",
    ),
    "second-moment-dtype-complex": (
        lambda: adamjax.adam(nu_dtype=jnp.complex64),
        TypeError,
        r"^nu_dtype must be a floating-point dtype, got complex64",
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
        lambda: adamjax.adam(unchecked("0.1")),
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
    # ... of the rest of the Adam family
    "radam-b1-one": (
        lambda: adamjax.radam(0.1, b1=1.0),
        ValueError,
        r"^b1 must be in \[0.0, 1.0\), got 1.0$",
    ),
    "radam-b1-none": (
        lambda: adamjax.radam(0.1, b1=unchecked(None)),
        TypeError,
        r"^b1 must be a number, an array or a per-leaf tree, got None$",
    ),
    "radam-b2-negative": (
        lambda: adamjax.radam(0.1, b2=-0.1),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got -0.1$",
    ),
    "radam-eps-negative": (
        lambda: adamjax.radam(0.1, eps=-1.0),
        ValueError,
        r"^eps must be >= 0.0, got -1.0$",
    ),
    "radam-eps-root-negative": (
        lambda: adamjax.radam(0.1, eps_root=-1.0),
        ValueError,
        r"^eps_root must be >= 0.0, got -1.0$",
    ),
    "radam-threshold-nan": (
        lambda: adamjax.radam(0.1, threshold=float("nan")),
        ValueError,
        r"^threshold must be a real number, got nan$",
    ),
    "radam-threshold-string": (
        lambda: adamjax.radam(0.1, threshold=unchecked("5")),
        TypeError,
        r"^threshold must be a number or an array, got '5'$",
    ),
    "radam-learning-rate-none": (
        lambda: adamjax.radam(unchecked(None)),
        TypeError,
        r"^learning_rate must be a number, an array or a per-leaf tree, got None$",
    ),
    "rectified-normalize-threshold-none": (
        lambda: adamjax.rectified_normalize(threshold=unchecked(None)),
        TypeError,
        r"^threshold must be a number, an array or a per-leaf tree, got None$",
    ),
    "adabelief-b2-one": (
        lambda: adamjax.adabelief(0.1, b2=1.0),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got 1.0$",
    ),
    "adabelief-eps-root-negative": (
        lambda: adamjax.adabelief(0.1, eps_root=-1e-16),
        ValueError,
        r"^eps_root must be >= 0.0, got -1e-16$",
    ),
    "adabelief-eps-longer-array": (
        lambda: adamjax.adabelief(0.1, eps=jnp.ones(3)),
        ValueError,
        r"^eps has shape \(3,\): a value shared by every leaf must be a scalar",
    ),
    "yogi-b1-above-one": (
        lambda: adamjax.yogi(0.1, b1=1.5),
        ValueError,
        r"^b1 must be in \[0.0, 1.0\), got 1.5$",
    ),
    "yogi-eps-negative": (
        lambda: adamjax.yogi(0.1, eps=-1e-3),
        ValueError,
        r"^eps must be >= 0.0, got -0.001$",
    ),
    "yogi-initial-accumulator-negative": (
        lambda: adamjax.yogi_moments(initial_accumulator_value=-1.0),
        ValueError,
        r"^initial_accumulator_value must be >= 0.0, got -1.0$",
    ),
    "lion-b1-above-one": (
        lambda: adamjax.lion(1e-3, b1=1.5),
        ValueError,
        r"^b1 must be in \[0.0, 1.0\], got 1.5$",
    ),
    "lion-b2-one": (
        lambda: adamjax.lion(1e-3, b2=1.0),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got 1.0$",
    ),
    "lion-b1-none": (
        lambda: adamjax.lion(1e-3, b1=unchecked(None)),
        TypeError,
        r"^b1 must be a number, an array or a per-leaf tree, got None$",
    ),
    "lion-b1-longer-array": (
        lambda: adamjax.lion(1e-3, b1=jnp.ones(3)),
        ValueError,
        r"^b1 has shape \(3,\): a value shared by every leaf must be a scalar",
    ),
    "lion-mu-dtype-integer": (
        lambda: adamjax.lion(1e-3, mu_dtype=jnp.int32),
        TypeError,
        r"^mu_dtype must be a floating-point dtype, got int32",
    ),
    "lion-weight-decay-negative": (
        lambda: adamjax.lion(1e-3, weight_decay=-1.0),
        ValueError,
        r"^weight_decay must be >= 0.0, got -1.0$",
    ),
    "lion-learning-rate-negative": (
        lambda: adamjax.lion(-1e-3),
        ValueError,
        r"^learning_rate must be >= 0.0, got -0.001$",
    ),
    "nadamw-b2-above-one": (
        lambda: adamjax.nadamw(1e-3, b2=1.5),
        ValueError,
        r"^b2 must be in \[0.0, 1.0\), got 1.5$",
    ),
    "nadamw-eps-negative": (
        lambda: adamjax.nadamw(1e-3, eps=-1.0),
        ValueError,
        r"^eps must be >= 0.0, got -1.0$",
    ),
    "adamaxw-eps-negative": (
        lambda: adamjax.adamaxw(1e-3, eps=-1e-8),
        ValueError,
        r"^eps must be >= 0.0, got -1e-08$",
    ),
    "adamaxw-b1-string": (
        lambda: adamjax.adamaxw(1e-3, b1=unchecked("0.9")),
        TypeError,
        r"^b1 must be a number or an array, got '0.9'$",
    ),
    # ... of clipping
    "clip-by-global-norm-zero": (
        lambda: adamjax.clip_by_global_norm(0.0),
        ValueError,
        r"^max_norm must be > 0, got 0",
    ),
    "clip-by-global-norm-negative": (
        lambda: adamjax.clip_by_global_norm(-1.0),
        ValueError,
        r"^max_norm must be >= 0.0, got -1.0$",
    ),
    "clip-by-global-norm-per-leaf": (
        lambda: adamjax.clip_by_global_norm(unchecked({"w": 1.0})),
        ValueError,
        r"^max_norm must be one number for the whole tree, not a per-leaf tree$",
    ),
    "clip-negative": (
        lambda: adamjax.clip(-1.0),
        ValueError,
        r"^max_delta must be >= 0.0, got -1.0$",
    ),
    "clip-none": (
        lambda: adamjax.clip(unchecked(None)),
        TypeError,
        r"^max_delta must be a number, an array or a per-leaf tree, got None$",
    ),
    # ... of monitor()
    "monitor-eps-negative": (
        lambda: adamjax.monitor(eps=-1.0),
        ValueError,
        r"^eps must be >= 0.0, got -1.0$",
    ),
    "monitor-learning-rate-negative": (
        lambda: adamjax.monitor(learning_rate=-0.1),
        ValueError,
        r"^learning_rate must be >= 0.0, got -0.1$",
    ),
    "monitor-every-zero": (
        lambda: adamjax.monitor(every=0),
        ValueError,
        r"^every must be an int >= 1, got 0$",
    ),
    "monitor-corrected-not-a-bool": (
        lambda: adamjax.monitor(corrected=unchecked(1)),
        TypeError,
        r"^corrected must be a bool, got 1$",
    ),
    # optax options that adamjax lacks: the message says the difference
    "rmsprop-centered": (
        lambda: adamjax.rmsprop(1e-2, centered=True),
        ValueError,
        r"^rmsprop\(centered=True\) is not available in adamjax: .*\(optax's centered=True is\)$",
    ),
    "rmsprop-initial-scale": (
        lambda: adamjax.rmsprop(1e-2, initial_scale=1.0),
        ValueError,
        r"^rmsprop\(initial_scale=1.0\) is not available in adamjax: its second moment starts at "
        r"zero \(optax's initial_scale=0.0\)$",
    ),
    "sgd-nesterov-without-momentum": (
        lambda: adamjax.sgd(1e-2, nesterov=True),
        ValueError,
        r"^sgd\(nesterov=True\) needs a momentum: .* \(optax ignores nesterov there\)$",
    ),
    "rmsprop-nesterov-without-momentum": (
        lambda: adamjax.rmsprop(1e-2, nesterov=True),
        ValueError,
        r"^rmsprop\(nesterov=True\) needs a momentum \(optax ignores nesterov there\)$",
    ),
    "amsgrad-without-bias-correction": (
        lambda: adamjax.amsgrad(1e-2, bias_correction_nu=False),
        ValueError,
        r"^amsgrad\(\) always bias-corrects both moments here; optax's bias_correction_mu=False or "
        r"bias_correction_nu=False is not available",
    ),
    "nadam-without-nesterov": (
        lambda: adamjax.nadam(1e-2, nesterov=False),
        ValueError,
        r"^nadam\(nesterov=False\) is Adam: use adamjax.adam \(optax allows it\)$",
    ),
    "nadamw-without-nesterov": (
        lambda: adamjax.nadamw(1e-3, nesterov=False),
        ValueError,
        r"^nadamw\(nesterov=False\) is AdamW: use adamjax.adamw \(optax allows it\)$",
    ),
    "partition-mask-compatible-extra-args": (
        lambda: adamjax.partition(
            {"a": adamjax.sgd(0.1)}, {"w": "a", "b": "a"}, mask_compatible_extra_args=True
        ),
        ValueError,
        r"^partition\(mask_compatible_extra_args=True\) is not available in adamjax: ",
    ),
    # a schedule's values, checked where they are concrete
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
    # grads whose tree differs from the state's, in user terms
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
    "belief-moments-grads-extra-leaf": (
        lambda: _update(adamjax.belief_moments(), {"w": jnp.ones(3), "v": jnp.ones(3)}, W),
        ValueError,
        r"^grads\['v'\] is not in params$",
    ),
    "belief-moments-grads-integer": (
        lambda: _update(adamjax.belief_moments(), {"w": jnp.ones(3, jnp.int32)}, W),
        TypeError,
        r"^grads\['w'\] has dtype int32, but state.mu\['w'\] has dtype float64: grads must be "
        r"floating-point or complex$",
    ),
    "yogi-moments-grads-extra-leaf": (
        lambda: _update(adamjax.yogi_moments(), {"w": jnp.ones(3), "v": jnp.ones(3)}, W),
        ValueError,
        r"^grads\['v'\] is not in params$",
    ),
    "yogi-moments-grads-integer": (
        lambda: _update(adamjax.yogi_moments(), {"w": jnp.ones(3, jnp.int32)}, W),
        TypeError,
        r"^grads\['w'\] has dtype int32, but state.mu\['w'\] has dtype float64",
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
    "per-leaf-hyperparameter-extra-leaf": (
        lambda: _update(
            adamjax.adamw(weight_decay={"encoder": {"w": 0.1, "b": 0.0, "x": 1.0}, "head": 0.0}),
            _grads(),
        ),
        ValueError,
        r"^weight_decay\['encoder'\]\['x'\] is not in params$",
    ),
    "per-leaf-learning-rate-extra-leaf": (
        lambda: _update(
            adamjax.adam({"encoder": {"w": 0.1, "b": 0.1}, "head": 0.1, "c": 0.2}), _grads()
        ),
        ValueError,
        r"^learning_rate\['c'\] is not in params$",
    ),
    "per-leaf-learning-rate-missing-leaf": (
        lambda: _update(adamjax.adam({"encoder": {"w": 0.1, "b": 0.1}}), _grads()),
        ValueError,
        r"^params\['head'\] has no entry in learning_rate$",
    ),
    "keras-per-leaf-extra-leaf": (
        lambda: _update(
            presets.keras_adam(beta_1={"encoder": {"w": 0.9, "b": 0.9}, "head": 0.9, "t": 0.9}),
            _grads(),
        ),
        ValueError,
        r"^(b1|beta_1)\['t'\] is not in params$",
    ),
    "radam-per-leaf-extra-leaf": (
        lambda: _update(adamjax.radam(0.1, b2={"a": 0.999, "c": 0.99}), *[TWO_LEAVES] * 2),
        ValueError,
        r"^b2\['c'\] is not in params$",
    ),
    "radam-per-leaf-threshold-of-another-shape": (
        lambda: _update(
            adamjax.radam(0.1, threshold={"a": 5.0, "b": jnp.ones(2)}), *[TWO_LEAVES] * 2
        ),
        ValueError,
        r"^threshold\['b'\] has shape \(2,\), which does not broadcast to the shape \(3,\) of "
        r"params\['b'\] without changing it$",
    ),
    "lion-per-leaf-extra-leaf-at-init": (
        lambda: adamjax.lion(1e-3, b1={"a": 0.9, "extra": 0.5}).init(TWO_LEAVES),
        ValueError,
        r"^b1\['extra'\] is not in params$",
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
        r"^updates\['head'\] has dtype complex64, but params\['head'\] has dtype float32: "
        r"complex updates need a complex parameter$",
    ),
    "apply-updates-float-for-an-integer-param": (
        lambda: adamjax.apply_updates(
            {"step": jnp.asarray(7, jnp.int32)}, {"step": jnp.asarray(0.0, F32)}
        ),
        TypeError,
        r"^updates\['step'\] has dtype float32, but params\['step'\] has dtype int32: an "
        r"integer or boolean param takes an update of its own dtype or float0",
    ),
    "apply-updates-another-integer-dtype": (
        lambda: adamjax.apply_updates(
            {"step": jnp.asarray(7, jnp.int32)}, {"step": jnp.asarray(0, jnp.int16)}
        ),
        TypeError,
        r"^updates\['step'\] has dtype int16, but params\['step'\] has dtype int32",
    ),
    "apply-updates-integer-for-a-bool-param": (
        lambda: adamjax.apply_updates({"flag": jnp.asarray(True)}, {"flag": jnp.asarray(0)}),
        TypeError,
        r"^updates\['flag'\] has dtype int(32|64), but params\['flag'\] has dtype bool",
    ),
    "apply-updates-float0-for-a-float-param": (
        lambda: adamjax.apply_updates(
            {"w": jnp.ones(2, F32)}, {"w": np.zeros(2, jax.dtypes.float0)}
        ),
        TypeError,
        r"^updates\['w'\] has dtype float0, but params\['w'\] has dtype float32: updates "
        r"must be floating-point or complex",
    ),
    "apply-updates-integer-for-a-float-param": (
        lambda: adamjax.apply_updates({"w": jnp.ones(2, F32)}, {"w": jnp.zeros(2, jnp.int32)}),
        TypeError,
        r"^updates\['w'\] has dtype int32, but params\['w'\] has dtype float32",
    ),
    # wrong chain order
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
    "bias-correction-without-moments": (
        lambda: _update(adamjax.chain(adamjax.bias_correction()), _grads()),
        TypeError,
        r"^bias_correction\(\) takes moment estimates but received a gradient tree: a moment "
        r"estimator such as moments\(\) must come before bias_correction\(\) in the chain$",
    ),
    "max-second-moment-without-moments": (
        lambda: _update(adamjax.chain(adamjax.max_second_moment()), _grads()),
        TypeError,
        r"^max_second_moment\(\) takes moment estimates but received a gradient tree: a moment "
        r"estimator such as moments\(\) must come before max_second_moment\(\) in the chain$",
    ),
    "rectified-normalize-of-uncorrected-moments": (
        _wrong_order(
            adamjax.moments(), adamjax.rectified_normalize(), adamjax.scale_by_learning_rate(0.1)
        ),
        TypeError,
        r"^rectified_normalize\(\) takes bias-corrected moments: place bias_correction\(\) "
        r"before it in the chain$",
    ),
    "rectified-normalize-without-moments": (
        _wrong_order(adamjax.rectified_normalize(), adamjax.scale_by_learning_rate(0.1)),
        TypeError,
        r"^rectified_normalize\(\) takes moment estimates but received a gradient tree: a moment "
        r"estimator such as moments\(\) must come before rectified_normalize\(\)",
    ),
    "learning-rate-right-after-belief-moments": (
        lambda: adamjax.chain(adamjax.belief_moments(), adamjax.scale_by_learning_rate(0.1)),
        TypeError,
        r"^chain\(\) transform 1 \(scale_by_learning_rate\(\)\) takes gradients or updates, but "
        r"from transform 0 \(belief_moments\(\)\) on the chain carries moment estimates",
    ),
    "monitor-before-moments": (
        lambda: adamjax.chain(adamjax.monitor(), adamjax.moments()),
        TypeError,
        r"^chain\(\) transform 1 \(moments\(\)\) takes gradients or updates, but transform 0 "
        r"\(monitor\(\)\) takes moment estimates and passes them on",
    ),
    "monitor-uncorrected-after-bias-correction": (
        _wrong_order(
            adamjax.moments(), adamjax.bias_correction(), adamjax.monitor(corrected=False)
        ),
        ValueError,
        r"^monitor\(corrected=False\) received moments that are already corrected: place it "
        r"before bias_correction\(\) or drop corrected=False$",
    ),
    "monitor-moments-of-other-params": (
        lambda: adamjax.monitor().update(
            _update(adamjax.moments(), {"w": jnp.ones(2), "extra": jnp.ones(1)}, _ONE_AND_EXTRA)[0],
            adamjax.monitor().init({"w": jnp.ones(2)}),
        ),
        ValueError,
        r"^moments\['extra'\] is not in params$",
    ),
    "moments-from-state-of-an-empty-state": (
        lambda: adamjax.moments_from_state(unchecked(adamjax.EmptyState())),
        TypeError,
        r"^moments_from_state\(\) takes the MomentsState of moments\(\), got EmptyState$",
    ),
    "moments-from-state-b1-without-a-first-moment": (
        lambda: adamjax.moments_from_state(
            adamjax.moments(None, 0.9).init({"w": jnp.ones(2)}), 0.9, 0.9
        ),
        ValueError,
        r"^b1 must be None exactly when the state keeps no first moment \(b1=0.9, state.mu is "
        r"None\)$",
    ),
    "moments-from-state-of-an-infinity-norm": (
        lambda: adamjax.moments_from_state(_stepped_state(adamjax.adamax(0.1))),
        TypeError,
        r"^moments_from_state\(\) takes the MomentsState of moments\(\); a InfinityNormState "
        r"holds an infinity norm \(Adamax\), not a moving average of \|g\|\^2",
    ),
    "moments-from-state-of-a-sum-of-squares": (
        lambda: adamjax.moments_from_state(_stepped_state(adamjax.adagrad(0.1))),
        TypeError,
        r"^moments_from_state\(\) takes the MomentsState of moments\(\); a SumOfSquaresState "
        r"holds a running sum of squares \(Adagrad\), not a moving average of \|g\|\^2",
    ),
    "update-rms-of-moments": (
        lambda: adamjax.update_rms(_update(adamjax.moments(), _grads())[0]),
        TypeError,
        r"^update_rms\(\) takes a tree of updates but received moment estimates",
    ),
    "signal-to-noise-of-grads": (
        lambda: adamjax.signal_to_noise(unchecked(_grads())),
        TypeError,
        r"^signal_to_noise\(\) takes moment estimates but received a gradient tree",
    ),
    "apply-moments": (
        lambda: adamjax.apply_updates(PARAMS, _update(adamjax.moments(), _grads())[0]),
        TypeError,
        r"^apply_updates\(\) received moment estimates: end the chain with normalize\(\)",
    ),
    "chain-of-a-non-transform": (
        lambda: adamjax.chain(adamjax.moments(), unchecked(0.1)),
        TypeError,
        r"^chain\(\) argument 1 must have init and update methods, got float",
    ),
    "chain-state-of-another-optimizer": (
        lambda: adamjax.adam().update(_grads(), adamjax.adamw().init(PARAMS), PARAMS),
        ValueError,
        r"^chain of 4 transforms got a state that is not a tuple of 4 states",
    ),
    # weight decay: missing params, mask
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
    # skip_nonfinite
    "skip-nonfinite-inner-not-a-transform": (
        lambda: adamjax.skip_nonfinite(unchecked(0.1)),
        TypeError,
        r"^skip_nonfinite\(\) inner must have init and update methods, got float",
    ),
    "skip-nonfinite-negative-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), max_consecutive_skips=-1),
        ValueError,
        r"^max_consecutive_skips must be None or an int >= 0, got -1",
    ),
    "skip-nonfinite-float-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), max_consecutive_skips=unchecked(2.5)),
        ValueError,
        r"^max_consecutive_skips must be None or an int >= 0, got 2.5",
    ),
    "skip-nonfinite-on-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(), 3, on_limit=unchecked("raise")),
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
    "skip-nonfinite-limit-with-the-default-on-limit": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(0.1), max_consecutive_skips=1),
        ValueError,
        r'^max_consecutive_skips=1 has no effect with on_limit="skip", which skips every '
        r"non-finite step",
    ),
    "skip-nonfinite-limit-with-on-limit-skip": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(0.1), max_consecutive_skips=1, on_limit="skip"),
        ValueError,
        r'^max_consecutive_skips=1 has no effect with on_limit="skip"',
    ),
    "skip-nonfinite-numpy-bool-limit": (
        lambda: adamjax.skip_nonfinite(
            adamjax.adam(0.1), unchecked(np.bool_(True)), on_limit="apply"
        ),
        ValueError,
        r"^max_consecutive_skips must be None or an int >= 0, got (np\.)?True_?$",
    ),
    "skip-nonfinite-check-state-not-a-bool": (
        lambda: adamjax.skip_nonfinite(adamjax.adam(0.1), check_state=unchecked("yes")),
        TypeError,
        r"^check_state must be a bool, got 'yes'$",
    ),
    "skip-nonfinite-inner-ends-in-moments": (
        lambda: adamjax.skip_nonfinite(_chain_ending_in_moments()),
        TypeError,
        r"^skip_nonfinite\(\) inner \(chain\(\)\) emits moment estimates; it must emit updates: "
        r"end it with normalize\(\) and a learning rate$",
    ),
    "skip-nonfinite-inner-starts-at-moments": (
        lambda: adamjax.skip_nonfinite(_chain_starting_at_moments()),
        TypeError,
        r"^skip_nonfinite\(\) inner \(chain\(\)\) takes moment estimates; it must take "
        r"gradients: start it with a moment estimator such as moments\(\)$",
    ),
    # accumulate_gradients
    "accumulate-every-k-zero": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(), 0),
        ValueError,
        r"^every_k must be an int >= 1, got 0",
    ),
    "accumulate-inner-not-a-transform": (
        lambda: adamjax.accumulate_gradients(unchecked(None), 2),
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
    "accumulate-every-k-bool": (
        lambda: adamjax.accumulate_gradients(adamjax.sgd(1.0), unchecked(True)),
        ValueError,
        r"^every_k must be an int >= 1, got True$",
    ),
    "accumulate-every-k-numpy-bool": (
        lambda: adamjax.accumulate_gradients(adamjax.sgd(1.0), unchecked(np.bool_(True))),
        ValueError,
        r"^every_k must be an int >= 1, got (np\.)?True_?$",
    ),
    "accumulate-accumulator-dtype-not-a-dtype": (
        lambda: adamjax.accumulate_gradients(adamjax.adam(0.1), 2, accumulator_dtype="not-a-dtype"),
        TypeError,
        r"^accumulator_dtype must be a floating-point dtype, got 'not-a-dtype'$",
    ),
    "accumulate-complex-accumulator-for-real-params": (
        lambda: adamjax.accumulate_gradients(
            adamjax.adam(0.1), 2, accumulator_dtype=jnp.complex64
        ).init(PARAMS),
        TypeError,
        r"^accumulator_dtype is complex64, but params\['encoder'\]\['b'\] has dtype float32: a "
        r"complex accumulator needs complex params",
    ),
    "accumulate-inner-ends-in-moments": (
        lambda: adamjax.accumulate_gradients(_chain_ending_in_moments(), 2),
        TypeError,
        r"^accumulate_gradients\(\) inner \(chain\(\)\) emits moment estimates; it must emit "
        r"updates",
    ),
    "accumulate-inner-starts-at-moments": (
        lambda: adamjax.accumulate_gradients(_chain_starting_at_moments(), 2),
        TypeError,
        r"^accumulate_gradients\(\) inner \(chain\(\)\) takes moment estimates; it must take "
        r"gradients",
    ),
    # partition
    "partition-without-transforms": (
        lambda: adamjax.partition({}, {"w": "a"}),
        TypeError,
        r"^partition\(\) transforms must be a non-empty dict mapping each label to a transform, "
        r"got \{\}$",
    ),
    "partition-of-a-non-transform": (
        lambda: adamjax.partition({"main": unchecked(0.1)}, {"w": "main"}),
        TypeError,
        r"^partition\(\) transforms\['main'\] must have init and update methods, got float$",
    ),
    "partition-label-not-a-string": (
        lambda: adamjax.partition(unchecked({0: adamjax.adam()}), {"w": 0}),
        TypeError,
        r"^partition\(\) labels must be strings, got the key 0$",
    ),
    "partition-group-ends-in-moments": (
        lambda: adamjax.partition({"a": _chain_ending_in_moments()}, {"w": "a", "b": "a"}),
        TypeError,
        r"^partition\(\) transforms\['a'\] \(chain\(\)\) emits moment estimates; it must emit "
        r"updates: end it with normalize\(\) and a learning rate$",
    ),
    "partition-group-starts-at-moments": (
        lambda: adamjax.partition({"a": _chain_starting_at_moments()}, {"w": "a", "b": "a"}),
        TypeError,
        r"^partition\(\) transforms\['a'\] \(chain\(\)\) takes moment estimates; it must take "
        r"gradients",
    ),
    # lazy_adam
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


# --- checkpoints: restoring into the wrong structure names the mismatch -------------------------


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

    @jax.jit
    def step(grads: Any, state: Any) -> Any:
        return optimizer.update(grads, state, PARAMS)

    donating = jax.jit(step, donate_argnums=(1,))
    with pytest.raises(ValueError, match=r"grads\['encoder'\]\['extra'\] is not in params"):
        donating(_grads(extra=jnp.ones(2)), state)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(state))
    # the same state still works afterwards
    _, new_state = donating(_grads(), state)
    assert int(new_state[0].count) == 1
