"""The torch presets against torch.optim itself, step by step (float64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets
from tests.typed import unchecked

torch = pytest.importorskip("torch", reason="torch cross-checks need torch (CI installs it)")

pytestmark = pytest.mark.slow  # every test here steps torch.optim side by side; CI runs them

STEPS = 50


def _run_torch(make: Callable[[list], Any], params: np.ndarray, grads: list) -> list:
    p = torch.nn.Parameter(torch.tensor(params, dtype=torch.float64))
    opt = make([p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _run_ours(transform: Any, params: np.ndarray, grads: list) -> list:
    x = jnp.asarray(params)
    state = transform.init(x)
    out = []
    for g in grads:
        updates, state = transform.update(jnp.asarray(g), state, x)
        x = adamjax.apply_updates(x, updates)
        out.append(np.asarray(x))
    return out


CASES = {
    "adam": (
        lambda: presets.torch_adam(0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
    ),
    "adam-coupled-weight-decay": (
        lambda: presets.torch_adam(0.01, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
    ),
    "adam-amsgrad": (
        lambda: presets.torch_adam(0.01, (0.8, 0.99), amsgrad=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    ),
    "adamw": (
        lambda: presets.torch_adamw(0.01, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ),
    "adamw-amsgrad": (
        lambda: presets.torch_adamw(0.01, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, amsgrad=True),
    ),
    "nadam": (
        lambda: presets.torch_nadam(0.01),
        lambda ps: torch.optim.NAdam(ps, lr=0.01),
    ),
    "nadam-weight-decay": (
        lambda: presets.torch_nadam(0.01, (0.8, 0.99), weight_decay=0.1, momentum_decay=0.01),
        lambda ps: torch.optim.NAdam(
            ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01
        ),
    ),
    "adam-alias": (lambda: adamjax.adam(0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adamax": (lambda: adamjax.adamax(0.01), lambda ps: torch.optim.Adamax(ps, lr=0.01)),
    "sgd-nesterov": (
        lambda: adamjax.sgd(0.01, 0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True),
    ),
    "rmsprop": (
        lambda: adamjax.rmsprop(0.01, 0.99, eps_in_sqrt=False),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99),
    ),
    "adagrad": (
        lambda: adamjax.adagrad(0.1, 0.0, 1e-10, eps_in_sqrt=False),
        lambda ps: torch.optim.Adagrad(ps, lr=0.1),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_every_step(name: str) -> None:
    ours_factory, torch_factory = CASES[name]
    rng = np.random.default_rng(1)
    params = rng.normal(size=(5, 3))
    grads = [rng.normal(size=(5, 3)) * np.exp(rng.normal()) + 0.1 for _ in range(STEPS)]
    ours = _run_ours(ours_factory(), params, grads)
    theirs = _run_torch(torch_factory, params, grads)
    # torch keeps NAdam's momentum product in a float32 tensor even for float64 params
    rtol, atol = (1e-7, 1e-9) if name.startswith("nadam") else (1e-10, 1e-12)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{name} step {step}")
    assert np.max(np.abs(ours[-1] - params)) > 0.05


# Complex parameters. torch views a complex tensor as a real one with a trailing axis of 2 and
# optimizes the real and imaginary parts as separate coordinates, each with its own second
# moment; adamjax.adam keeps one second moment of |g|^2 per complex entry (optax's rule).

COMPLEX_STEPS = 25


def _torch_rule_on_real_array(
    x: np.ndarray,
    grads: list[np.ndarray],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    amsgrad: bool = False,
    momentum_decay: float | None = None,
) -> list[np.ndarray]:
    """float64 NumPy: torch's Adam (L2 or decoupled decay, AMSGrad) or NAdam on a real array."""
    b1, b2 = betas
    m, v, v_max, mu_product = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x), 1.0
    out = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            x = x * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if momentum_decay is None:
            v_max = np.maximum(v_max, v)
            denominator = np.sqrt((v_max if amsgrad else v) / (1 - b2**t)) + eps
            x = x - lr * m / (1 - b1**t) / denominator
        else:
            mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
            mu_product *= mu
            denominator = np.sqrt(v / (1 - b2**t)) + eps
            x = x - lr * (1 - mu) / (1 - mu_product) * g / denominator
            x = x - lr * mu_next / (1 - mu_product * mu_next) * m / denominator
        out.append(x)
    return out


def _split_rule(z: np.ndarray, grads: list[np.ndarray], **rule: Any) -> list[np.ndarray]:
    """The split rule: the real rule on the real parts and, separately, on the imaginary parts."""
    real = _torch_rule_on_real_array(np.real(z), [np.real(g) for g in grads], **rule)
    imag = _torch_rule_on_real_array(np.imag(z), [np.imag(g) for g in grads], **rule)
    return [a + 1j * b for a, b in zip(real, imag, strict=True)]


# name -> (preset, torch optimizer, the split rule's arguments)
COMPLEX_CASES: dict[str, tuple[Callable[[], Any], Callable[[list], Any], dict]] = {
    "adam": (
        lambda: presets.torch_adam(0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
        dict(lr=0.01),
    ),
    "adam-weight-decay": (
        lambda: presets.torch_adam(0.01, weight_decay=0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1),
    ),
    "adam-amsgrad": (
        lambda: presets.torch_adam(0.01, (0.8, 0.99), amsgrad=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
        dict(lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    ),
    "adam-amsgrad-weight-decay": (
        lambda: presets.torch_adam(0.01, weight_decay=0.1, amsgrad=True),
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
        dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    ),
    "adamw": (
        lambda: presets.torch_adamw(0.01, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        dict(lr=0.01, weight_decay=0.1, decoupled=True),
    ),
    "adamw-amsgrad": (
        lambda: presets.torch_adamw(0.01, (0.8, 0.99), weight_decay=0.1, amsgrad=True),
        lambda ps: torch.optim.AdamW(
            ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True
        ),
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, decoupled=True, amsgrad=True),
    ),
    "nadam": (
        lambda: presets.torch_nadam(0.01),
        lambda ps: torch.optim.NAdam(ps, lr=0.01),
        dict(lr=0.01, momentum_decay=4e-3),
    ),
    "nadam-weight-decay": (
        lambda: presets.torch_nadam(0.01, (0.8, 0.99), weight_decay=0.1, momentum_decay=0.01),
        lambda ps: torch.optim.NAdam(
            ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01
        ),
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01),
    ),
}


@pytest.fixture
def torch_float64_scalars() -> Any:
    """torch keeps NAdam's momentum product in the default dtype: make it float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _complex_problem(seed: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """Complex params and gradients whose real and imaginary parts differ in scale."""
    rng = np.random.default_rng(seed)
    shape = (4, 3)
    params = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    grads = []
    for _ in range(COMPLEX_STEPS):
        real = rng.normal(size=shape) * np.exp(rng.normal()) + 0.1
        imag = 0.05 * rng.normal(size=shape) - 0.02
        grads.append(real + 1j * imag)
    return params, grads


def _run_torch_complex(make: Callable[[list], Any], params: np.ndarray, grads: list) -> list:
    p = torch.nn.Parameter(torch.tensor(params, dtype=torch.complex128))
    opt = make([p])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.complex128)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


def _run_ours_jitted(transform: Any, params: Any, grads: list) -> list:
    @jax.jit
    def step(x: Any, state: Any, g: Any) -> Any:
        updates, state = transform.update(g, state, x)
        return adamjax.apply_updates(x, updates), state

    x = jax.tree.map(jnp.asarray, params)
    state = transform.init(x)
    out = []
    for g in grads:
        x, state = step(x, state, jax.tree.map(jnp.asarray, g))
        out.append(jax.tree.map(np.asarray, x))
    return out


@pytest.mark.usefixtures("torch_float64_scalars")
@pytest.mark.parametrize("name", list(COMPLEX_CASES))
def test_complex_params_match_torch_and_the_split_rule(name: str) -> None:
    ours_factory, torch_factory, rule = COMPLEX_CASES[name]
    params, grads = _complex_problem()
    ours = _run_ours_jitted(ours_factory(), params, grads)
    theirs = _run_torch_complex(torch_factory, params, grads)
    reference = _split_rule(params, grads, **rule)
    assert len(ours) == len(theirs) == len(reference) == COMPLEX_STEPS
    for step, (a, b, c) in enumerate(zip(ours, theirs, reference, strict=True)):
        assert a.dtype == np.complex128
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{name} step {step}")
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12, err_msg=f"{name} step {step}")
    moved = ours[-1] - params
    assert np.max(np.abs(moved.real)) > 0.05 and np.max(np.abs(moved.imag)) > 0.05


def _magnitude_rule_adam(z: np.ndarray, grads: list[np.ndarray], lr: float) -> np.ndarray:
    """float64 NumPy Adam with one second moment of |g|^2 per complex entry (optax's rule)."""
    m, v = np.zeros_like(z), np.zeros(z.shape)
    for t, g in enumerate(grads, start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * np.real(g * np.conj(g))
        z = z - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return z


def test_native_adam_keeps_the_magnitude_rule_and_the_preset_splits() -> None:
    """On complex params the two rules differ, and each function follows its own."""
    params, grads = _complex_problem()
    native = _run_ours_jitted(adamjax.adam(0.01), params, grads)[-1]
    preset = _run_ours_jitted(presets.torch_adam(0.01), params, grads)[-1]
    magnitude = _magnitude_rule_adam(params, grads, 0.01)
    split = _split_rule(params, grads, lr=0.01)[-1]
    np.testing.assert_allclose(native, magnitude, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(preset, split, rtol=1e-10, atol=1e-12)
    # the imaginary gradients are small: the split rule moves the imaginary parts much further
    assert np.max(np.abs(split - magnitude)) > 0.05
    assert np.max(np.abs(preset - native)) > 0.05


def test_native_adamw_differs_from_torch_adamw_on_complex_params() -> None:
    params, grads = _complex_problem()
    native = _run_ours_jitted(adamjax.adamw(0.01, weight_decay=0.1), params, grads)[-1]
    preset = _run_ours_jitted(presets.torch_adamw(0.01, weight_decay=0.1), params, grads)[-1]
    assert np.max(np.abs(preset - native)) > 0.05


@pytest.mark.usefixtures("torch_float64_scalars")
def test_a_tree_of_complex_and_real_params_with_per_leaf_rates_matches_torch_groups() -> None:
    """One optimizer over a complex and a real leaf, each with its own lr (torch param groups)."""
    rng = np.random.default_rng(5)
    z, x = rng.normal(size=3) + 1j * rng.normal(size=3), rng.normal(size=(2, 2))
    grads = [
        {"z": rng.normal(size=3) + 0.1j * rng.normal(size=3), "x": rng.normal(size=(2, 2))}
        for _ in range(COMPLEX_STEPS)
    ]
    ours = _run_ours_jitted(
        presets.torch_adam(unchecked({"z": 0.02, "x": 0.005}), weight_decay=0.1, amsgrad=True),
        {"z": z, "x": x},
        grads,
    )
    pz = torch.nn.Parameter(torch.tensor(z, dtype=torch.complex128))
    px = torch.nn.Parameter(torch.tensor(x, dtype=torch.float64))
    opt = torch.optim.Adam(
        [{"params": [pz], "lr": 0.02}, {"params": [px], "lr": 0.005}],
        weight_decay=0.1,
        amsgrad=True,
    )
    for step, g in enumerate(grads):
        pz.grad = torch.tensor(g["z"], dtype=torch.complex128)
        px.grad = torch.tensor(g["x"], dtype=torch.float64)
        opt.step()
        np.testing.assert_allclose(ours[step]["z"], pz.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours[step]["x"], px.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.min(np.abs(ours[-1]["z"] - z)) > 1e-3


def test_state_of_complex_params_is_real_with_a_trailing_axis_of_two() -> None:
    params = {"z": jnp.ones((4, 3), jnp.complex128), "x": jnp.ones(5, jnp.float64)}
    state = presets.torch_adam(weight_decay=0.1, amsgrad=True).init(params)
    moments_state, maximum_state = state[1], state[2]
    for tree in (moments_state.mu, moments_state.nu, maximum_state.nu_max):
        assert tree["z"].shape == (4, 3, 2) and tree["z"].dtype == jnp.float64
        assert tree["x"].shape == (5,) and tree["x"].dtype == jnp.float64
