"""The torch presets against torch.optim itself, step by step (float64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import presets

torch = pytest.importorskip("torch", reason="torch cross-checks need torch (CI installs it)")

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
        lambda: adamjax.rmsprop(0.01, 0.99),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99),
    ),
    "adagrad": (lambda: adamjax.adagrad(0.1), lambda ps: torch.optim.Adagrad(ps, lr=0.1)),
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
