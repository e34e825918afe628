"""torch's RAdam, NAdam with decoupled weight decay and Adafactor: the presets against
torch.optim step by step (float64, every param compared after every step), Adafactor's rule
against a float64 NumPy reference written here, and their errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets
from tests.typed import unchecked

torch = pytest.importorskip("torch", reason="torch cross-checks need torch (CI installs it)")

STEPS = 100
KEYS = ("w", "b", "s", "k")  # the order of torch's parameter list

# A small non-convex problem: a tanh layer scaled by a scalar, a periodic penalty on the matrix,
# and a 3-axis leaf (Adafactor factors it over its last two axes).
_DATA = np.random.default_rng(7)
X = _DATA.normal(size=(6, 4))
Y = _DATA.normal(size=(6, 3))
INITIAL = {
    "w": _DATA.normal(size=(3, 4)),
    "b": _DATA.normal(size=3) * 0.1,
    "s": np.asarray(1.3),
    "k": _DATA.normal(size=(2, 3, 2)),
}


def _jax_loss(p: dict[str, jax.Array]) -> jax.Array:
    fit = p["s"] * jnp.tanh(jnp.asarray(X) @ p["w"].T + p["b"][None, :]) - jnp.asarray(Y)
    ripple = 0.05 * jnp.sum(jnp.cos(2.0 * p["w"]))
    bumps = 0.1 * jnp.sum(jnp.sin(p["k"]) * p["k"] ** 2)
    return jnp.mean(fit**2) + ripple + bumps


def _torch_loss(p: dict[str, Any]) -> Any:
    fit = p["s"] * torch.tanh(torch.tensor(X) @ p["w"].T + p["b"]) - torch.tensor(Y)
    ripple = 0.05 * torch.sum(torch.cos(2.0 * p["w"]))
    bumps = 0.1 * torch.sum(torch.sin(p["k"]) * p["k"] ** 2)
    return torch.mean(fit**2) + ripple + bumps


def _run_torch(
    make: Callable[[list], Any], steps: int = STEPS
) -> tuple[list[dict[str, np.ndarray]], Any, list]:
    """torch's trajectory, its optimizer and its tensors (in the order of ``KEYS``); float64
    default dtype, so that torch keeps its scalar state (NAdam's momentum product) in float64."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = {k: torch.nn.Parameter(torch.tensor(INITIAL[k])) for k in KEYS}
        optimizer, scheduler = make([tensors[k] for k in KEYS])
        out = []
        for _ in range(steps):
            optimizer.zero_grad()
            _torch_loss(tensors).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            out.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    finally:
        torch.set_default_dtype(previous)
    return out, optimizer, [tensors[k] for k in KEYS]


def _run_ours(
    optimizer: adamjax.GradientTransformation, steps: int = STEPS
) -> tuple[list[dict[str, np.ndarray]], Any]:
    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(jax.grad(_jax_loss)(params), state, params)
        return adamjax.apply_updates(params, updates), state

    params = {k: jnp.asarray(v) for k, v in INITIAL.items()}
    state = optimizer.init(params)
    out = []
    for _ in range(steps):
        params, state = step(params, state)
        out.append({k: np.asarray(v) for k, v in params.items()})
    return out, state


def _only(optimizer: Any) -> Callable[[list], tuple[Any, None]]:
    return lambda ps: (optimizer(ps), None)


# name -> (preset, torch optimizer and scheduler)
CASES: dict[str, tuple[Callable[[], Any], Callable[[list], tuple[Any, Any]]]] = {
    "radam": (
        lambda: presets.torch_radam(0.01),
        _only(lambda ps: torch.optim.RAdam(ps, lr=0.01)),
    ),
    "radam-coupled-weight-decay": (
        lambda: presets.torch_radam(0.01, (0.8, 0.99), weight_decay=0.1),
        _only(lambda ps: torch.optim.RAdam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
    ),
    "radam-decoupled-weight-decay": (
        lambda: presets.torch_radam(0.01, weight_decay=0.5, decoupled_weight_decay=True),
        _only(
            lambda ps: torch.optim.RAdam(ps, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True)
        ),
    ),
    "radam-decoupled-no-weight-decay": (
        lambda: presets.torch_radam(0.01, eps=1e-3, decoupled_weight_decay=True),
        _only(lambda ps: torch.optim.RAdam(ps, lr=0.01, eps=1e-3, decoupled_weight_decay=True)),
    ),
    "nadam-decoupled-weight-decay": (
        lambda: presets.torch_nadam(0.01, weight_decay=0.5, decoupled_weight_decay=True),
        _only(
            lambda ps: torch.optim.NAdam(ps, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True)
        ),
    ),
    "nadam-decoupled-no-weight-decay": (
        lambda: presets.torch_nadam(
            0.01, (0.8, 0.99), momentum_decay=0.01, decoupled_weight_decay=True
        ),
        _only(
            lambda ps: torch.optim.NAdam(
                ps, lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, decoupled_weight_decay=True
            )
        ),
    ),
    "adafactor": (
        lambda: presets.torch_adafactor(),
        _only(lambda ps: torch.optim.Adafactor(ps)),
    ),
    "adafactor-weight-decay-clipped": (
        lambda: presets.torch_adafactor(0.05, -0.6, (None, 1e-2), d=1.05, weight_decay=0.5),
        _only(
            lambda ps: torch.optim.Adafactor(
                ps, lr=0.05, beta2_decay=-0.6, eps=(None, 1e-2), d=1.05, weight_decay=0.5
            )
        ),
    ),
    "adafactor-lr-schedule": (
        lambda: presets.torch_adafactor(
            lambda count: 0.2 * 0.97 ** jnp.asarray(count).astype(jnp.float64), weight_decay=0.1
        ),
        lambda ps: _with_scheduler(
            torch.optim.Adafactor(ps, lr=0.2, weight_decay=0.1), lambda e: 0.97**e
        ),
    ),
}


def _with_scheduler(optimizer: Any, factor: Callable[[int], float]) -> tuple[Any, Any]:
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# one case per preset runs by default; the others (each a compilation) with the slow set
DEFAULT_CASES = (
    "radam-decoupled-weight-decay",
    "nadam-decoupled-weight-decay",
    "adafactor-weight-decay-clipped",
)


@pytest.mark.parametrize(
    "name",
    [n if n in DEFAULT_CASES else pytest.param(n, marks=pytest.mark.slow) for n in CASES],
)
def test_matches_torch_every_step(name: str) -> None:
    ours_factory, torch_factory = CASES[name]
    ours, state = _run_ours(ours_factory())
    theirs, optimizer, tensors = _run_torch(torch_factory)
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for key in KEYS:
            np.testing.assert_allclose(
                a[key], b[key], rtol=1e-10, atol=1e-13, err_msg=f"{name} step {step} {key}"
            )
    moved = max(float(np.max(np.abs(ours[-1][k] - INITIAL[k]))) for k in KEYS)
    assert moved > 0.05, moved
    if name.startswith("adafactor"):
        _assert_torchs_factors(state[0], optimizer, tensors)


def _assert_torchs_factors(factored: Any, optimizer: Any, tensors: list) -> None:
    """The factored state holds torch's ``row_var``, ``col_var`` and ``variance``, with torch's
    shapes, and counts the steps."""
    assert isinstance(factored, presets.ClampedFactoredState)
    assert int(factored.count) == STEPS
    rows, cols, variances = (cast(dict, tree) for tree in (factored.row, factored.col, factored.v))
    for key, tensor in zip(KEYS, tensors, strict=True):
        theirs = optimizer.state[tensor]
        if key in ("w", "k"):
            pairs = [(rows[key], theirs["row_var"]), (cols[key], theirs["col_var"])]
        else:
            pairs = [(variances[key], theirs["variance"])]
        for ours, torch_state in pairs:
            assert ours.shape == tuple(torch_state.shape), key
            np.testing.assert_allclose(np.asarray(ours), torch_state.numpy(), rtol=1e-10)


def _rho(b2: float, t: int) -> float:
    """The length of RAdam's approximated simple moving average after ``t`` steps."""
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    return rho_inf - 2.0 * t * b2**t / (1.0 - b2**t)


def test_the_radam_runs_cross_the_rectification_threshold() -> None:
    """The torch comparisons above cover momentum steps (rho_t <= 5) and rectified ones."""
    for b2 in (0.999, 0.99):
        below = [t for t in range(1, STEPS + 1) if _rho(b2, t) <= 5.0]
        assert below == [1, 2, 3, 4, 5], (b2, below)


def test_radam_takes_momentum_steps_until_the_threshold() -> None:
    """Steps 1 to 5 do not read the second moment: a gradient scaled by 1000 for all of them
    scales the updates by 1000 (a momentum step); the sixth step does not."""
    params = {"w": jnp.asarray([0.5, -1.0])}
    grads = [{"w": jnp.asarray([0.3, -0.2]) * (i + 1)} for i in range(6)]
    optimizer = presets.torch_radam(0.1)
    update = jax.jit(optimizer.update)

    def updates_for(scale: float) -> list[np.ndarray]:
        state, out = optimizer.init(params), []
        for g in grads:
            u, state = update(jax.tree.map(lambda x: x * scale, g), state, params)
            out.append(np.asarray(u["w"]))
        return out

    small, large = updates_for(1.0), updates_for(1000.0)
    for t in range(5):
        np.testing.assert_allclose(large[t], 1000.0 * small[t], rtol=1e-12)
    np.testing.assert_allclose(large[5], small[5], rtol=1e-6)  # the adaptive step


# ----- Adafactor against a float64 NumPy reference --------------------------------------------


class NumpyAdafactor:
    """torch's Adafactor rule on one float64 array, written from its definition.

    Shazeer & Stern's factored second moment with torch's choices: the decay
    ``1 - beta2_t = t**beta2_decay``, the last two axes factored for any array with two or more,
    ``eps1`` a floor (on the row mean and on the estimate, squared), the relative step size
    ``max(eps2, rms(theta)) * min(lr, 1 / sqrt(t))``, update clipping by ``d`` and decoupled
    weight decay ``lr * weight_decay``.
    """

    def __init__(
        self,
        theta: np.ndarray,
        lr: float,
        beta2_decay: float,
        eps: tuple,
        d: float,
        weight_decay: float,
    ) -> None:
        self.lr, self.beta2_decay, self.d, self.weight_decay = lr, beta2_decay, d, weight_decay
        self.eps1 = np.finfo(np.float64).eps if eps[0] is None else eps[0]
        self.eps2 = eps[1]
        self.t = 0
        self.clipped = 0
        if theta.ndim >= 2:
            self.row = np.zeros(theta.shape[:-1])  # mean over the last axis
            self.col = np.zeros(theta.shape[:-2] + theta.shape[-1:])  # over the one before
        else:
            self.v = np.zeros(theta.shape)

    def _estimate(self, g: np.ndarray) -> np.ndarray:
        new = float(self.t) ** self.beta2_decay  # 1 - beta2_t
        if g.ndim < 2:
            self.v = (1.0 - new) * self.v + new * g**2
            return self.v
        self.row = (1.0 - new) * self.row + new * np.mean(g**2, axis=-1)
        self.col = (1.0 - new) * self.col + new * np.mean(g**2, axis=-2)
        normalizer = np.maximum(np.mean(self.row, axis=-1), self.eps1)
        outer = np.einsum("...i,...j->...ij", self.row, self.col)
        return outer / normalizer[..., None, None]

    def step(self, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
        alpha = max(self.eps2, rms(theta)) * min(self.lr, self.t**-0.5)
        u = g / np.sqrt(np.maximum(self._estimate(g), self.eps1**2))
        divisor = max(1.0, rms(u) / self.d)
        self.clipped += divisor > 1.0
        return theta - self.lr * self.weight_decay * theta - alpha * u / divisor


# name -> keyword arguments of both
ADAFACTOR_SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0),
    "clipped-decayed": dict(lr=0.3, beta2_decay=-0.5, eps=(1e-6, 1e-2), d=1.0, weight_decay=0.2),
}


@pytest.mark.parametrize(
    "setting", [pytest.param("defaults", marks=pytest.mark.slow), "clipped-decayed"]
)
def test_adafactor_matches_the_numpy_reference(setting: str) -> None:
    """A 3-axis leaf, a tall matrix, a vector starting at zero (its scale is eps2) and a
    scalar, under gradients of varied scale, 30 steps."""
    arguments = ADAFACTOR_SETTINGS[setting]
    rng = np.random.default_rng(3)
    shapes = {"t": (2, 5, 3), "m": (6, 2), "v": (4,), "s": ()}
    theta = {k: rng.normal(size=shape) for k, shape in shapes.items()}
    theta["v"] = np.zeros(4)
    references = {k: NumpyAdafactor(theta[k], **arguments) for k in shapes}
    optimizer = presets.torch_adafactor(**arguments)
    params = {k: jnp.asarray(v) for k, v in theta.items()}
    state, update = optimizer.init(params), jax.jit(optimizer.update)
    for step in range(30):
        grads = {k: rng.normal(size=shape) * np.exp(rng.normal()) for k, shape in shapes.items()}
        theta = {k: references[k].step(theta[k], grads[k]) for k in shapes}
        updates, state = update(jax.tree.map(jnp.asarray, grads), state, params)
        params = adamjax.apply_updates(params, updates)
        for k in shapes:
            np.testing.assert_allclose(
                np.asarray(params[k]), theta[k], rtol=1e-12, atol=1e-15, err_msg=f"{step} {k}"
            )
    if setting == "clipped-decayed":  # the clipping is exercised, not only defined
        assert sum(r.clipped for r in references.values()) > 10


def test_adafactor_in_float32_follows_the_float64_reference() -> None:
    """float32 params: the same rule, its epsilon float32's (rounding only)."""
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(4, 3)).astype(np.float32).astype(np.float64)
    reference = NumpyAdafactor(theta, 1e-2, -0.8, (float(np.finfo(np.float32).eps), 1e-3), 1.0, 0.0)
    optimizer = presets.torch_adafactor()
    params = jnp.asarray(theta, jnp.float32)
    state, update = optimizer.init(params), jax.jit(optimizer.update)
    for _ in range(10):
        g = rng.normal(size=(4, 3)).astype(np.float32)
        theta = reference.step(theta, g.astype(np.float64))
        updates, state = update(jnp.asarray(g), state, params)
        params = adamjax.apply_updates(params, updates)
    assert params.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(params, np.float64), theta, rtol=1e-5)


# ----- errors (those RAdam and NAdam share with torch_adam are in tests/test_presets.py) ------

# (keyword arguments, exception, the message's start)
BAD_ADAFACTOR_ARGUMENTS: list[tuple[dict[str, Any], type, str]] = [
    (dict(lr=-0.1), ValueError, r"lr must be >= 0.0"),
    (dict(lr={"w": 0.1}), TypeError, r"lr must be one number"),
    (dict(beta2_decay=0.5), ValueError, r"beta2_decay must be <= 0.0, got 0.5"),
    (dict(beta2_decay="fast"), TypeError, r"beta2_decay must be"),
    (dict(eps=1e-3), TypeError, r"eps must be a pair \(eps1 or None, eps2\)"),
    (dict(eps=(-1.0, 1e-3)), ValueError, r"eps\[0\] must be >= 0.0"),
    (dict(eps=(None, -1e-3)), ValueError, r"eps\[1\] must be >= 0.0"),
    (dict(eps=(None, None)), TypeError, r"eps\[1\] must be a number"),
    (dict(d=0.5), ValueError, r"d must be >= 1.0, got 0.5"),
    (dict(weight_decay=-0.1), ValueError, r"weight_decay must be >= 0.0"),
    (dict(weight_decay=jnp.asarray([0.1, 0.2])), TypeError, r"weight_decay must be one number"),
    (dict(d={"w": 1.0}), TypeError, r"d must be one number"),
    (dict(d=None), TypeError, r"d must be a number"),
]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    BAD_ADAFACTOR_ARGUMENTS,
    ids=[f"{'-'.join(a)}-{i}" for i, (a, _, _) in enumerate(BAD_ADAFACTOR_ARGUMENTS)],
)
def test_bad_adafactor_arguments_are_named_as_torch_names_them(
    arguments: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error) as raised:
        presets.torch_adafactor(**{k: unchecked(v) for k, v in arguments.items()})
    assert re.match(message, str(raised.value)), str(raised.value)


def test_adafactor_refuses_complex_params_naming_the_leaf() -> None:
    optimizer = presets.torch_adafactor()
    params = {"w": jnp.ones((2, 2)), "z": jnp.ones(3, jnp.complex128)}
    with pytest.raises(TypeError, match=r"^params\['z'\] has dtype complex128; torch's Adafactor"):
        optimizer.init(params)
    real = {"w": jnp.ones((2, 2)), "z": jnp.ones(3)}
    state = optimizer.init(real)
    grads = {"w": jnp.ones((2, 2)), "z": jnp.ones(3, jnp.complex128)}
    with pytest.raises(TypeError, match=r"grads\['z'\] has dtype complex128"):
        optimizer.update(grads, state, real)


def test_the_blocks_refuse_what_they_cannot_read() -> None:
    params = jnp.ones(3)
    corrected = adamjax.chain(
        adamjax.moments(), adamjax.bias_correction(), presets.folded_rectified_normalize()
    )
    with pytest.raises(TypeError, match=r"folded_rectified_normalize\(\) takes both moving"):
        corrected.update(jnp.ones(3), corrected.init(params))
    with pytest.raises(ValueError, match=r"^eps must be >= 0.0"):
        presets.folded_rectified_normalize(-1.0)
    with pytest.raises(ValueError, match=r"^eps1 must be >= 0.0"):
        presets.clamped_factored_second_moment(eps1=-1.0)
    with pytest.raises(ValueError, match=r"^beta2_decay must be <= 0.0"):
        presets.clamped_factored_second_moment(beta2_decay=0.1)
