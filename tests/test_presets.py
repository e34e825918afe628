"""The presets speak their library's language: errors under its argument names, a state whose
structure does not depend on how a zero is written, and real_view's contract."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets

# real_view is the private wrapper the torch presets put around their chains. What it promises an
# inner transform of any other kind (extra arguments handed on, a whole transform required) has
# no public entry point, so the two tests of that import it; the rest test it through the presets.
from adamjax._real_view import real_view
from tests.typed import unchecked

# preset -> [(id, keyword arguments, exception, the message's start)]
BAD_TORCH_ARGUMENTS: list[tuple[str, dict[str, Any], type, str]] = [
    ("lr-negative", dict(lr=-0.1), ValueError, r"lr must be >= 0.0"),
    ("lr-nan", dict(lr=float("nan")), ValueError, r"lr must be >= 0.0, got nan"),
    ("lr-not-a-number", dict(lr="0.1"), TypeError, r"lr must be"),
    (
        "beta1-too-large",
        dict(betas=(1.5, 0.999)),
        ValueError,
        r"betas\[0\] must be in \[0.0, 1.0\)",
    ),
    ("beta1-one", dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be in \[0.0, 1.0\)"),
    ("beta1-none", dict(betas=(None, 0.999)), TypeError, r"betas\[0\] must be"),
    ("beta2-one", dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0.0, 1.0\)"),
    ("beta2-negative", dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in \[0.0, 1.0\)"),
    (
        "beta1-per-leaf",
        dict(betas=({"w": 0.9, "b": 1.5}, 0.999)),
        ValueError,
        r"betas\[0\]\['b'\] must be in \[0.0, 1.0\), got 1.5",
    ),
    ("betas-one-number", dict(betas=0.9), TypeError, r"betas must be a pair"),
    ("betas-too-short", dict(betas=(0.9,)), TypeError, r"betas must be a pair"),
    ("betas-too-long", dict(betas=(0.9, 0.99, 0.999)), TypeError, r"betas must be a pair"),
    ("eps-negative", dict(eps=-1e-8), ValueError, r"eps must be >= 0.0"),
    ("weight-decay-negative", dict(weight_decay=-0.1), ValueError, r"weight_decay must be >= 0.0"),
    (
        "weight-decay-array-negative",
        dict(weight_decay=jnp.asarray(-0.1)),
        ValueError,
        r"weight_decay must be >= 0.0",
    ),
]
AMSGRAD_NOT_A_BOOL = ("amsgrad-not-a-bool", dict(amsgrad="yes"), TypeError, r"amsgrad must be")
MOMENTUM_DECAY_NEGATIVE = (
    "momentum-decay-negative",
    dict(momentum_decay=-0.01),
    ValueError,
    r"momentum_decay must be >= 0.0",
)
DECOUPLED_NOT_A_BOOL = (
    "decoupled-not-a-bool",
    dict(decoupled_weight_decay="yes"),
    TypeError,
    r"decoupled_weight_decay must be True or False",
)
BAD_KERAS_ARGUMENTS: list[tuple[str, dict[str, Any], type, str]] = [
    ("learning-rate-negative", dict(learning_rate=-0.1), ValueError, r"learning_rate must be >="),
    ("beta-1-one", dict(beta_1=1.0), ValueError, r"beta_1 must be in \[0.0, 1.0\)"),
    ("beta-1-none", dict(beta_1=None), TypeError, r"beta_1 must be"),
    (
        "beta-1-per-leaf",
        dict(beta_1={"w": 0.9, "b": -0.5}),
        ValueError,
        r"beta_1\['b'\] must be in \[0.0, 1.0\), got -0.5",
    ),
    ("beta-2-too-large", dict(beta_2=1.5), ValueError, r"beta_2 must be in \[0.0, 1.0\)"),
    ("epsilon-negative", dict(epsilon=-1e-7), ValueError, r"epsilon must be >= 0.0"),
    ("epsilon-not-a-number", dict(epsilon="small"), TypeError, r"epsilon must be"),
    AMSGRAD_NOT_A_BOOL,
]

ERROR_CASES = (
    [("torch_adam", *case) for case in [*BAD_TORCH_ARGUMENTS, AMSGRAD_NOT_A_BOOL]]
    + [("torch_adamw", *case) for case in [*BAD_TORCH_ARGUMENTS, AMSGRAD_NOT_A_BOOL]]
    + [
        ("torch_nadam", *case)
        for case in [*BAD_TORCH_ARGUMENTS, MOMENTUM_DECAY_NEGATIVE, DECOUPLED_NOT_A_BOOL]
    ]
    + [("torch_radam", *case) for case in [*BAD_TORCH_ARGUMENTS, DECOUPLED_NOT_A_BOOL]]
    + [("keras_adam", *case) for case in BAD_KERAS_ARGUMENTS]
)
# adamjax's own names, which a preset's message must not use in place of its library's
FOREIGN_NAMES = {
    "torch_adam": ("b1", "b2", "learning_rate"),
    "torch_adamw": ("b1", "b2", "learning_rate"),
    "torch_nadam": ("b1", "b2", "learning_rate"),
    "torch_radam": ("b1", "b2", "learning_rate"),
    "keras_adam": ("b1", "b2", "eps "),
}


@pytest.mark.parametrize(
    ("preset", "case", "arguments", "error", "message"),
    ERROR_CASES,
    ids=[f"{preset}-{case}" for preset, case, *_ in ERROR_CASES],
)
def test_bad_arguments_are_named_as_the_library_names_them(
    preset: str, case: str, arguments: dict[str, Any], error: type, message: str
) -> None:
    del case
    with pytest.raises(error) as raised:
        getattr(presets, preset)(**arguments)
    text = str(raised.value)
    assert re.match(message, text), text
    for name in FOREIGN_NAMES[preset]:
        assert not re.match(re.escape(name), text), text


def test_betas_may_be_a_list_or_an_array_of_two() -> None:
    params = jnp.ones(3)
    grads = jnp.full(3, 0.5)
    expected, _ = presets.torch_adam(0.1, (0.8, 0.99)).update(grads, _init(params), params)
    for betas in ([0.8, 0.99], np.asarray([0.8, 0.99])):
        opt = presets.torch_adam(0.1, unchecked(betas))  # annotated as a tuple
        updates, _ = opt.update(grads, opt.init(params), params)
        np.testing.assert_array_equal(np.asarray(updates), np.asarray(expected))


def _init(params: Any) -> Any:
    return presets.torch_adam(0.1, (0.8, 0.99)).init(params)


# State structure: a Python zero and an array zero give the same tree.

# name -> (Python zero, array zero, (torch module, params) -> the torch optimizer)
ZERO_PAIRS: dict[str, tuple[Callable[[], Any], Callable[[], Any], Callable[[Any, list], Any]]] = {
    "torch_adam": (
        lambda: presets.torch_adam(0.01, weight_decay=0.0),
        lambda: presets.torch_adam(0.01, weight_decay=jnp.asarray(0.0)),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.0),
    ),
    "torch_adam-amsgrad": (
        lambda: presets.torch_adam(0.01, weight_decay=0, amsgrad=True),
        lambda: presets.torch_adam(0.01, weight_decay=np.float64(0.0), amsgrad=True),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.0, amsgrad=True),
    ),
    "torch_nadam": (
        lambda: presets.torch_nadam(0.01, weight_decay=0.0),
        lambda: presets.torch_nadam(0.01, weight_decay=jnp.asarray(0.0)),
        lambda torch, ps: torch.optim.NAdam(ps, lr=0.01, weight_decay=0.0),
    ),
    "torch_radam": (
        lambda: presets.torch_radam(0.01, weight_decay=0.0),
        lambda: presets.torch_radam(0.01, weight_decay=jnp.asarray(0.0)),
        lambda torch, ps: torch.optim.RAdam(ps, lr=0.01, weight_decay=0.0),
    ),
}
PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}


def _grads(step: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(step)
    return {k: jnp.asarray(rng.normal(size=v.shape) + 0.1) for k, v in PARAMS.items()}


def _train(optimizer: Any, params: Any, state: Any, steps: range) -> tuple[Any, Any]:
    for step in steps:
        updates, state = optimizer.update(_grads(step), state, params)
        params = adamjax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", list(ZERO_PAIRS))
def test_python_zero_and_array_zero_give_the_same_state_structure(name: str) -> None:
    python_zero, array_zero, _ = ZERO_PAIRS[name]
    a, b = python_zero().init(PARAMS), array_zero().init(PARAMS)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert isinstance(a[0], adamjax.EmptyState)  # the coupled decay stage is kept


@pytest.mark.parametrize("name", list(ZERO_PAIRS))
def test_a_checkpoint_of_one_restores_into_the_other(name: str, tmp_path: Path) -> None:
    python_zero, array_zero, _ = ZERO_PAIRS[name]
    for source, target in ((python_zero(), array_zero()), (array_zero(), python_zero())):
        params, state = _train(source, PARAMS, source.init(PARAMS), range(3))
        file = tmp_path / "checkpoint.npz"
        adamjax.save_checkpoint(file, {"params": params, "opt_state": state})
        shapes = jax.eval_shape(lambda t=target: {"params": PARAMS, "opt_state": t.init(PARAMS)})
        restored = adamjax.restore_checkpoint(file, shapes)
        resumed = _train(target, restored["params"], restored["opt_state"], range(3, 6))
        straight = _train(source, params, state, range(3, 6))
        chex.assert_trees_all_close(resumed, straight, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", list(ZERO_PAIRS))
@pytest.mark.slow  # steps torch.optim side by side; CI runs it
def test_python_zero_and_array_zero_both_match_torch(name: str) -> None:
    torch = pytest.importorskip("torch", reason="torch cross-checks need torch (CI installs it)")
    python_zero, array_zero, torch_factory = ZERO_PAIRS[name]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam's momentum product in float64
    try:
        tensors = {k: torch.nn.Parameter(torch.tensor(np.asarray(v))) for k, v in PARAMS.items()}
        opt = torch_factory(torch, list(tensors.values()))
        ours = [(python_zero(), PARAMS, None), (array_zero(), PARAMS, None)]
        ours = [(o, p, o.init(p)) for o, p, _ in ours]
        for step in range(20):
            grads = _grads(step)
            for key, tensor in tensors.items():
                tensor.grad = torch.tensor(np.asarray(grads[key]))
            opt.step()
            moved = []
            for optimizer, params, state in ours:
                updates, state = optimizer.update(grads, state, params)
                moved.append((optimizer, adamjax.apply_updates(params, updates), state))
            ours = moved
            for _, params, _ in ours:
                for key, tensor in tensors.items():
                    np.testing.assert_allclose(
                        np.asarray(params[key]), tensor.detach().numpy(), rtol=1e-10, atol=1e-12
                    )
    finally:
        torch.set_default_dtype(previous)
    # moved by more than two full steps of lr = 0.01 (RAdam's first, rectified steps are small)
    assert np.max(np.abs(np.asarray(ours[0][1]["w"] - PARAMS["w"]))) > 0.02


def test_a_python_zero_needs_no_params_and_skips_the_arithmetic() -> None:
    """torch skips ``g + 0 * theta`` (``if weight_decay != 0``), so an infinite param does not
    turn the gradient into NaN; an array zero is data and multiplies."""
    params = jnp.asarray([jnp.inf, 1.0])
    grads = jnp.asarray([0.5, -0.5])
    skipped, _ = adamjax.add_decayed_weights(0.0).update(grads, adamjax.EmptyState(), params)
    np.testing.assert_array_equal(np.asarray(skipped), [0.5, -0.5])
    computed, _ = adamjax.add_decayed_weights(jnp.asarray(0.0)).update(
        grads, adamjax.EmptyState(), params
    )
    assert np.isnan(np.asarray(computed)[0])

    opt = presets.torch_adam(0.1)
    finite = jnp.ones(2)
    with_params, _ = opt.update(grads, opt.init(finite), finite)
    without, _ = opt.update(grads, opt.init(finite))
    np.testing.assert_array_equal(np.asarray(without), np.asarray(with_params))
    np.testing.assert_allclose(np.asarray(without), [-0.1, 0.1], rtol=1e-6)


# real_view on its own.


def test_real_view_leaves_real_params_and_their_state_as_the_inner_transform_has_them() -> None:
    """On real params torch_adamw is its chain of adamjax blocks, bit for bit, state included."""
    inner = adamjax.chain(
        adamjax.moments(0.9, 0.999),
        adamjax.bias_correction(),
        adamjax.normalize(1e-8),
        adamjax.add_decayed_weights(0.1),
        adamjax.scale_by_learning_rate(0.01),
    )
    wrapped = presets.torch_adamw(0.01, weight_decay=0.1)
    a_state, b_state = inner.init(PARAMS), wrapped.init(PARAMS)
    chex.assert_trees_all_equal_structs(a_state, b_state)
    a = _train(inner, PARAMS, a_state, range(5))
    b = _train(wrapped, PARAMS, b_state, range(5))
    chex.assert_trees_all_equal(a, b, strict=True)


def test_real_view_gives_each_part_of_a_complex_entry_its_own_step() -> None:
    """First Adam step: each part moves by -lr * sign(its gradient), or not at all if it is 0."""
    opt = presets.torch_adam(0.1)
    z = jnp.asarray([1.0 + 2.0j, -1.0 + 0.0j])
    grads = jnp.asarray([3.0 - 0.001j, 0.0 + 5.0j])
    updates, state = opt.update(grads, opt.init(z), z)
    assert updates.dtype == jnp.complex128
    np.testing.assert_allclose(np.asarray(updates), [-0.1 + 0.1j, 0.0 - 0.1j], rtol=1e-5)
    moments_state = state[1]  # after the (coupled) weight decay stage
    np.testing.assert_allclose(
        np.asarray(moments_state.nu), [[0.009, 1e-9], [0.0, 0.025]], rtol=1e-12, atol=0
    )
    # adam alone: one second moment |g|^2 per entry, so the small imaginary part barely moves
    native, _ = adamjax.adam(0.1).update(grads, adamjax.adam(0.1).init(z), z)
    assert abs(float(np.asarray(native)[0].imag)) < 1e-4


class _ScaleByValue:
    """A transform that needs the extra argument ``value``: it multiplies the updates by it."""

    def init(self, params: Any) -> adamjax.EmptyState:
        del params
        return adamjax.EmptyState()

    def update(self, updates: Any, state: Any, params: Any = None, *, value: Any) -> Any:
        del params
        return jax.tree.map(lambda u: u * value, updates), state


def test_real_view_hands_extra_arguments_to_the_inner_transform() -> None:
    opt = real_view(_ScaleByValue())
    z = jnp.asarray([1.0 + 1.0j])
    updates, _ = opt.update(jnp.asarray([2.0 - 3.0j]), opt.init(z), z, value=jnp.asarray(0.5))
    np.testing.assert_array_equal(np.asarray(updates), [1.0 - 1.5j])


def test_real_view_names_a_gradient_whose_kind_differs_from_its_param() -> None:
    opt = presets.torch_adam(0.01)
    params = {"z": jnp.ones(2, jnp.complex128), "x": jnp.ones(2)}
    state = opt.init(params)
    with pytest.raises(TypeError, match=r"grads\['x'\] has dtype complex128, but params\['x'\]"):
        opt.update(
            {"z": jnp.ones(2, jnp.complex128), "x": jnp.ones(2, jnp.complex128)}, state, params
        )
    with pytest.raises(TypeError, match=r"grads\['z'\] has dtype float64, but params\['z'\]"):
        opt.update({"z": jnp.ones(2), "x": jnp.ones(2)}, state, params)


def test_real_view_refuses_what_is_not_a_whole_transform() -> None:
    with pytest.raises(TypeError, match=r"real_view\(\) inner must have init and update"):
        real_view(unchecked(0.1))
    with pytest.raises(TypeError, match=r"real_view\(\) inner \(moments\(\)\) emits moment"):
        real_view(adamjax.moments())
