"""monitored(): the monitor and the stages it watches are built from one set of
hyperparameters, so the recorded step size is the one the updates use; what it refuses; and
how moments_from_state and DiagnosticsState read what they are given."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from tests import reference as ref

SHAPES = {"w": (3, 4), "b": (4,)}
STEPS = 6


def _problem(seed: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = [
        {k: np.exp(rng.normal()) * rng.normal(size=s) + 0.2 for k, s in SHAPES.items()}
        for _ in range(STEPS)
    ]
    return params, grads


def _run(optimizer: Any, params: dict, grads: list[dict]) -> list[tuple[Any, Any]]:
    """(updates, state) after each jitted step, params moved by the updates."""
    step = jax.jit(optimizer.update)
    x = {k: jnp.asarray(v) for k, v in params.items()}
    state, out = optimizer.init(x), []
    for g in grads:
        updates, state = step({k: jnp.asarray(v) for k, v in g.items()}, state, x)
        x = adamjax.apply_updates(x, updates)
        out.append((updates, state))
    return out


def _bits(tree: Any) -> list[bytes]:
    return [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]


def _schedule(count: Any) -> Any:
    return 0.03 / (1.0 + 0.5 * jnp.asarray(count, jnp.float64))


# monitored(...) and the alias whose updates it must give bit for bit
EQUIVALENT = {
    "adam": (
        lambda: adamjax.monitored(adamjax.moments(0.8, 0.99), 0.02, 1e-3, 1e-6),
        lambda: adamjax.adam(0.02, 0.8, 0.99, 1e-3, 1e-6),
    ),
    "adam-schedule": (
        lambda: adamjax.monitored(adamjax.moments(0.9, 0.999), _schedule),
        lambda: adamjax.adam(_schedule),
    ),
    "adamw-masked": (
        lambda: adamjax.monitored(
            adamjax.moments(0.9, 0.999), 0.01, weight_decay=0.1, mask={"w": True, "b": False}
        ),
        lambda: adamjax.adamw(0.01, weight_decay=0.1, mask={"w": True, "b": False}),
    ),
    "nadam": (
        lambda: adamjax.monitored(adamjax.moments(0.9, 0.999, nesterov=True), 0.01),
        lambda: adamjax.nadam(0.01),
    ),
    "adamax": (
        lambda: adamjax.monitored(adamjax.infinity_moments(0.9, 0.999, 1e-8), 0.01, eps=0.0),
        lambda: adamjax.adamax(0.01),
    ),
}


@pytest.mark.parametrize("name", list(EQUIVALENT))
def test_updates_and_other_states_are_those_of_the_alias(name: str) -> None:
    monitored, alias = (make() for make in EQUIVALENT[name])
    params, grads = _problem(1)
    for (ours, our_state), (theirs, their_state) in zip(
        _run(monitored, params, grads), _run(alias, params, grads), strict=True
    ):
        assert _bits(ours) == _bits(theirs)
        without_monitor = our_state[:1] + our_state[2:]
        assert _bits(without_monitor) == _bits(their_state)
        assert isinstance(our_state[1], adamjax.DiagnosticsState)


def test_recorded_step_size_and_rms_are_those_of_the_updates() -> None:
    """The float64 reference, run with the hyperparameters given once, gives the recorded step
    sizes; the recorded update RMS is the RMS of the updates the optimizer returned."""
    lr, b1, b2, eps, eps_root = 0.05, 0.8, 0.99, 1e-3, 1e-4
    params, grads = _problem(2)
    optimizer = adamjax.monitored(adamjax.moments(b1, b2), lr, eps, eps_root)
    references = {
        k: ref.Adam(p, lr=lr, b1=b1, b2=b2, eps=eps, eps_root=eps_root) for k, p in params.items()
    }
    current = dict(params)
    for (updates, state), g in zip(_run(optimizer, params, grads), grads, strict=True):
        diagnostics = state[1]
        for key, reference in references.items():
            current[key] = reference.step(current[key], g[key])
            _, v_hat = reference._corrected()
            eta = lr / (np.sqrt(v_hat + eps_root) + eps)
            np.testing.assert_allclose(diagnostics.step_size_mean[key], np.mean(eta), rtol=1e-12)
            np.testing.assert_allclose(diagnostics.step_size_max[key], np.max(eta), rtol=1e-12)
            u = np.asarray(updates[key])
            np.testing.assert_allclose(
                diagnostics.update_rms[key], np.sqrt(np.mean(u**2)), rtol=1e-12
            )


def test_a_hand_built_monitor_with_another_eps_records_what_the_updates_are_not() -> None:
    """What monitored() rules out: a monitor given its own eps (the default 1e-8) in a chain
    that normalizes with eps=0.1 reports an update RMS the updates do not have."""
    params, grads = _problem(3)
    hand_built = adamjax.chain(
        adamjax.moments(0.9, 0.999),
        adamjax.monitor(0.01),
        adamjax.bias_correction(),
        adamjax.normalize(0.1),
        adamjax.scale_by_learning_rate(0.01),
    )
    updates, state = _run(hand_built, params, grads)[-1]
    actual = np.sqrt(np.mean(np.asarray(updates["b"]) ** 2))
    assert abs(float(state[1].update_rms["b"]) - actual) > 0.01 * actual
    rebuilt = adamjax.monitored(adamjax.moments(0.9, 0.999), 0.01, eps=0.1)
    updates, state = _run(rebuilt, params, grads)[-1]
    actual = np.sqrt(np.mean(np.asarray(updates["b"]) ** 2))
    np.testing.assert_allclose(float(state[1].update_rms["b"]), actual, rtol=1e-12)


def test_without_correction_it_is_rmsprop_and_records_every_kth_step() -> None:
    params, grads = _problem(4)
    optimizer = adamjax.monitored(
        adamjax.moments(None, 0.9), 0.01, eps=0.0, eps_root=1e-8, corrected=False, every=2
    )
    alias = adamjax.rmsprop(0.01, 0.9, 1e-8)  # eps under the root, no correction
    ours, theirs = _run(optimizer, params, grads), _run(alias, params, grads)
    for (u, _), (expected, _) in zip(ours, theirs, strict=True):
        assert _bits(u) == _bits(expected)
    v = np.zeros(SHAPES["b"])
    recorded = []
    for t, g in enumerate(grads, start=1):
        v = 0.9 * v + 0.1 * g["b"] ** 2
        if t % 2 == 0:
            recorded = np.max(0.01 / np.sqrt(v + 1e-8))
        got = float(ours[t - 1][1][1].step_size_max["b"])
        np.testing.assert_allclose(got, recorded if t >= 2 else 0.0, rtol=1e-12)


ERRORS = {
    "a-whole-optimizer": (
        lambda: adamjax.monitored(adamjax.adam(0.1), 0.1),
        TypeError,
        r"^estimator must take gradients and emit moment estimates, got chain\(\)",
    ),
    "a-moments-stage": (
        lambda: adamjax.monitored(adamjax.bias_correction(), 0.1),
        TypeError,
        r"^estimator must take gradients and emit moment estimates, got bias_correction\(\)",
    ),
    "not-a-transform": (
        lambda: adamjax.monitored("moments", 0.1),  # pyright: ignore[reportArgumentType]
        TypeError,
        r"^estimator must have init and update methods",
    ),
    "eps-negative": (
        lambda: adamjax.monitored(adamjax.moments(), eps=-1.0),
        ValueError,
        r"^eps must be >= 0",
    ),
    "learning-rate-negative": (
        lambda: adamjax.monitored(adamjax.moments(), learning_rate=-0.1),
        ValueError,
        r"^learning_rate must be >= 0",
    ),
    "mask-without-decay": (
        lambda: adamjax.monitored(adamjax.moments(), mask={"w": True}),
        ValueError,
        r"^mask selects the leaves to decay: give weight_decay with it",
    ),
    "every-zero": (
        lambda: adamjax.monitored(adamjax.moments(), every=0),
        ValueError,
        r"^every must be an int >= 1",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_arguments_are_named(case: str) -> None:
    build, error, message = ERRORS[case]
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize(
    "state",
    [
        adamjax.LazyAdamState(count=jnp.ones([], jnp.int32), mu=jnp.ones(2), nu=jnp.ones(2)),
        (jnp.ones([], jnp.int32), jnp.ones(2), jnp.ones(2)),
        adamjax.MaxSecondMomentState(nu_max=jnp.ones(2)),
    ],
    ids=["LazyAdamState", "tuple", "MaxSecondMomentState"],
)
def test_moments_from_state_names_a_state_it_cannot_read(state: Any) -> None:
    """A state with the fields of MomentsState but another type is not read as one."""
    with pytest.raises(
        TypeError, match=f"MomentsState of moments\\(\\), got {type(state).__name__}"
    ):
        adamjax.moments_from_state(state)


def test_moments_from_state_reads_a_moments_state_by_its_type() -> None:
    state = adamjax.MomentsState(
        count=jnp.asarray(2, jnp.int32), mu=jnp.asarray([0.19]), nu=jnp.asarray([0.0199])
    )
    estimates = adamjax.moments_from_state(state, 0.9, 0.99)
    np.testing.assert_allclose(np.asarray(estimates.mu), [0.19 / (1 - 0.9**2)], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(estimates.nu), [0.0199 / (1 - 0.99**2)], rtol=1e-12)
    assert estimates.corrected and estimates.kind == "mean_square"


def test_each_per_leaf_view_reads_its_own_row() -> None:
    params = {"a": jnp.zeros(2), "b": [jnp.zeros(()), jnp.zeros(3)]}
    treedef = jax.tree.structure(params)
    factors = jnp.arange(2 * 3, dtype=jnp.float64).reshape(2, 3)
    summaries = 100 + jnp.arange(5 * 3, dtype=jnp.float64).reshape(5, 3)
    state = adamjax.DiagnosticsState(
        count=jnp.asarray(1, jnp.int32), factors=factors, summaries=summaries, treedef=treedef
    )
    rows = {
        "bias_correction1": [0, 1, 2],
        "bias_correction2": [3, 4, 5],
        "step_size_mean": [100, 101, 102],
        "step_size_min": [103, 104, 105],
        "step_size_max": [106, 107, 108],
        "snr_mean": [109, 110, 111],
        "update_rms": [112, 113, 114],
    }
    for name, (a, b0, b1) in rows.items():
        tree = getattr(state, name)
        assert jax.tree.structure(tree) == treedef, name
        assert [float(tree["a"]), float(tree["b"][0]), float(tree["b"][1])] == [a, b0, b1]
    assert list(state.as_dict()) == list(rows)
    assert "1 - b_2^t" in (type(state).bias_correction2.__doc__ or "")
