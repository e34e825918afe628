"""Diagnostics: monitor() leaves the updates bitwise unchanged and records what the float64
reference computes; the on-demand functions agree with it; jit and vmap (the errors are in
tests/test_errors.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from tests import reference as ref

STEPS = 30
SHAPES = {"w": (3, 4), "b": (4,), "s": ()}


def _problem(dtype: Any, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    scales = np.exp(rng.normal(size=STEPS))
    grads = [
        {k: scales[i] * rng.normal(size=s) + 0.3 for k, s in SHAPES.items()} for i in range(STEPS)
    ]
    cast = lambda tree: {k: jnp.asarray(v, dtype=dtype) for k, v in tree.items()}  # noqa: E731
    return cast(params), [cast(g) for g in grads]


def _adam_chain(
    lr: Any, b1: Any, b2: Any, eps: Any, eps_root: Any, monitored: bool, after: bool = False
):
    """Adam as its chain; with a monitor right after moments() (or after bias_correction())."""
    monitor = [adamjax.monitor(lr, eps, eps_root)] if monitored else []
    return adamjax.chain(
        adamjax.moments(b1, b2),
        *([] if after else monitor),
        adamjax.bias_correction(),
        *(monitor if after else []),
        adamjax.normalize(eps, eps_root),
        adamjax.scale_by_learning_rate(lr),
    )


# optimizer without monitor, with monitor (and the index of monitor's state in the chain)
VARIANTS: dict[str, tuple[Callable[[], Any], Callable[[], Any], int]] = {
    "adam": (
        lambda: _adam_chain(0.01, 0.9, 0.999, 1e-8, 0.0, False),
        lambda: _adam_chain(0.01, 0.9, 0.999, 1e-8, 0.0, True),
        1,
    ),
    "adam, monitor after bias_correction": (
        lambda: _adam_chain(0.01, 0.9, 0.999, 1e-8, 0.0, False),
        lambda: _adam_chain(0.01, 0.9, 0.999, 1e-8, 0.0, True, after=True),
        2,
    ),
    "nadam": (
        lambda: adamjax.nadam(0.01),
        lambda: adamjax.chain(
            adamjax.moments(0.9, 0.999, nesterov=True),
            adamjax.monitor(0.01),
            adamjax.bias_correction(),
            adamjax.normalize(1e-8),
            adamjax.scale_by_learning_rate(0.01),
        ),
        1,
    ),
    "amsgrad": (
        lambda: adamjax.amsgrad(0.01),
        lambda: adamjax.chain(
            adamjax.moments(0.9, 0.999),
            adamjax.bias_correction(),
            adamjax.max_second_moment(),
            adamjax.monitor(0.01),
            adamjax.normalize(1e-8),
            adamjax.scale_by_learning_rate(0.01),
        ),
        3,
    ),
    "adamax": (
        lambda: adamjax.adamax(0.01),
        lambda: adamjax.chain(
            adamjax.infinity_moments(0.9, 0.999, 1e-8),
            adamjax.monitor(0.01, eps=0.0),
            adamjax.bias_correction(),
            adamjax.normalize(eps=0.0),
            adamjax.scale_by_learning_rate(0.01),
        ),
        1,
    ),
}


def _run(opt: Any, params: dict, grads: list[dict]) -> tuple[Any, Any]:
    """Train under one jit (a scan over the steps): every step's updates and states, stacked."""
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *grads)

    @jax.jit
    def run(params: dict, stacked: dict) -> tuple[Any, Any]:
        def body(carry: Any, g: dict) -> tuple[Any, Any]:
            params, state = carry
            updates, state = opt.update(g, state, params)
            return (adamjax.apply_updates(params, updates), state), (updates, state)

        return jax.lax.scan(body, (params, opt.init(params)), stacked)[1]

    return run(params, stacked)


def _at(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


VARIANT_DTYPES = [(v, jnp.float32) for v in VARIANTS] + [
    ("adam", jnp.bfloat16),
    ("adam", jnp.float64),
]


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "dtype"), VARIANT_DTYPES)
def test_updates_are_bitwise_identical_with_and_without_monitor(variant: str, dtype: Any) -> None:
    plain, monitored, position = VARIANTS[variant]
    params, grads = _problem(dtype)
    expected, plain_states = _run(plain(), params, grads[:10])
    got, monitored_states = _run(monitored(), params, grads[:10])
    chex.assert_trees_all_equal(got, expected, strict=True)
    # the other states are untouched too
    without_monitor = monitored_states[:position] + monitored_states[position + 1 :]
    chex.assert_trees_all_equal(without_monitor, plain_states)
    assert isinstance(monitored_states[position], adamjax.DiagnosticsState)


def _reference_summaries(
    params: dict, grads: list[dict], lr: Any, b1: float, b2: float, eps, eps_r
):
    """Per step and leaf, the diagnostics computed from ref.Adam's float64 moments."""
    history = []
    opts = {
        k: ref.Adam(np.asarray(p), lr=lr, b1=b1, b2=b2, eps=eps, eps_root=eps_r)
        for k, p in params.items()
    }
    current = {k: np.asarray(p, np.float64) for k, p in params.items()}
    for g in grads:
        row = {}
        for k, opt in opts.items():
            current[k] = opt.step(current[k], np.asarray(g[k], np.float64))
            mh, vh = opt._corrected()
            rate = lr(opt.t - 1)
            eta = rate / (np.sqrt(vh + eps_r) + eps)
            snr = np.where(vh > 0, mh / np.sqrt(np.where(vh > 0, vh, 1.0)), 0.0)
            row[k] = dict(
                bias_correction1=1 - b1**opt.t,
                bias_correction2=1 - b2**opt.t,
                step_size_mean=np.mean(eta),
                step_size_min=np.min(eta),
                step_size_max=np.max(eta),
                snr_mean=np.mean(np.abs(snr)),
                update_rms=np.sqrt(np.mean((eta * mh) ** 2)),
                eta=eta,
                snr=snr,
            )
        history.append(row)
    return history


FIELDS = [
    "bias_correction1",
    "bias_correction2",
    "step_size_mean",
    "step_size_min",
    "step_size_max",
    "snr_mean",
    "update_rms",
]


@pytest.mark.parametrize("after", [False, True], ids=["before_correction", "after_correction"])
@pytest.mark.parametrize(
    ("lr", "b1", "b2", "eps", "eps_root"),
    [(0.01, 0.9, 0.999, 1e-8, 0.0), (None, 0.8, 0.99, 1e-3, 1e-6)],
)
def test_monitor_records_the_reference_summaries_step_by_step(
    lr, b1, b2, eps, eps_root, after: bool
) -> None:
    def schedule(count: Any) -> Any:
        return 0.02 / (1.0 + 0.1 * jnp.asarray(count).astype(jnp.float64))

    rate = schedule if lr is None else lr
    ref_rate = (lambda c: 0.02 / (1.0 + 0.1 * c)) if lr is None else (lambda c: lr)
    params, grads = _problem(jnp.float64, seed=1)
    _, states = _run(_adam_chain(rate, b1, b2, eps, eps_root, True, after), params, grads)
    expected = _reference_summaries(params, grads, ref_rate, b1, b2, eps, eps_root)
    diag = states[2 if after else 1]
    np.testing.assert_array_equal(np.asarray(diag.count), np.arange(1, STEPS + 1))
    for field in FIELDS:
        for key in SHAPES:
            got = np.asarray(getattr(diag, field)[key])
            assert got.shape == (STEPS,) and got.dtype == np.float64
            want = np.array([row[key][field] for row in expected])
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"{field}[{key}]")


def _estimator_chain(estimator: Any, extra: list, monitor_first: bool, eps: float) -> Any:
    """estimator -> extra -> bias_correction -> normalize, monitored before or after correction."""
    monitor = adamjax.monitor(0.01, eps)
    return adamjax.chain(
        estimator,
        *extra,
        *([monitor] if monitor_first else []),
        adamjax.bias_correction(),
        *([] if monitor_first else [monitor]),
        adamjax.normalize(eps),
        adamjax.scale_by_learning_rate(0.01),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    ["nadam", "adamax", "amsgrad_torch", "per_leaf_b"],
)
def test_summaries_agree_before_and_after_bias_correction(family: str) -> None:
    """Folding the correction into the summaries gives what the corrected moments give."""
    per_leaf_b1 = {"w": 0.8, "b": 0.9, "s": 0.95}
    estimator, extra, eps = {
        "nadam": (lambda: adamjax.moments(0.9, 0.999, nesterov=True), [], 1e-8),
        "adamax": (lambda: adamjax.infinity_moments(0.9, 0.999, 1e-8), [], 0.0),
        "amsgrad_torch": (lambda: adamjax.moments(0.9, 0.99), [adamjax.max_second_moment()], 1e-8),
        "per_leaf_b": (lambda: adamjax.moments(per_leaf_b1, 0.99), [], 1e-8),
    }[family]
    params, grads = _problem(jnp.float64, seed=7)
    position = 1 + len(extra)
    _, first = _run(_estimator_chain(estimator(), extra, True, eps), params, grads[:8])
    _, after = _run(_estimator_chain(estimator(), extra, False, eps), params, grads[:8])
    early, late = first[position].as_dict(), after[position + 1].as_dict()
    for name in early:
        for key in SHAPES:
            np.testing.assert_allclose(
                early[name][key], late[name][key], rtol=1e-12, atol=0, err_msg=f"{name}[{key}]"
            )


def test_on_demand_arrays_match_the_reference() -> None:
    params, grads = _problem(jnp.float64, seed=2)
    lr, eps = 0.03, 1e-8
    _, states = _run(adamjax.adam(lr), params, grads)
    expected = _reference_summaries(params, grads, lambda c: lr, 0.9, 0.999, eps, 0.0)

    @jax.jit
    @jax.vmap
    def on_demand(state: adamjax.MomentsState) -> tuple[Any, ...]:
        estimates = adamjax.moments_from_state(state, 0.9, 0.999)
        return (
            adamjax.effective_step_size(estimates, lr, eps),
            adamjax.signal_to_noise(estimates),
            *adamjax.bias_correction_factors(estimates),
        )

    eta, snr, f1, f2 = on_demand(states[0])
    for key in SHAPES:
        rows = [row[key] for row in expected]
        np.testing.assert_allclose(eta[key], np.stack([r["eta"] for r in rows]), rtol=1e-12)
        np.testing.assert_allclose(snr[key], np.stack([r["snr"] for r in rows]), rtol=1e-12)
        for got, field in ((f1, "bias_correction1"), (f2, "bias_correction2")):
            np.testing.assert_allclose(got[key], [r[field] for r in rows], rtol=1e-12)


def test_update_rms_of_final_updates_and_the_uncorrected_state() -> None:
    params, grads = _problem(jnp.float64, seed=3)
    updates, states = _run(adamjax.adamw(0.01, weight_decay=0.5), params, grads[:3])
    last = _at(updates, -1)
    expected = jax.tree.map(lambda u: np.sqrt(np.mean(np.asarray(u) ** 2)), last)
    chex.assert_trees_all_close(adamjax.update_rms(last), expected, rtol=1e-12)
    raw = adamjax.moments_from_state(_at(states[0], -1), 0.9, 0.999, corrected=False)
    assert not raw.corrected
    chex.assert_trees_all_equal(raw.nu, _at(states[0].nu, -1))


def test_factors_are_one_where_nothing_is_corrected() -> None:
    params = {"w": jnp.ones(3, jnp.float32)}
    g = {"w": jnp.asarray([1.0, -2.0, 0.0], jnp.float32)}

    @jax.jit
    def measure(g: dict) -> tuple[Any, ...]:
        adamax_moments = adamjax.infinity_moments(0.9, 0.99, 1e-8)
        adamax, _ = adamax_moments.update(g, adamax_moments.init(params))
        rms_moments = adamjax.moments(None, 0.9)
        rms, _ = rms_moments.update(g, rms_moments.init(params))
        return (
            adamjax.bias_correction_factors(adamax),
            adamjax.effective_step_size(adamax, 0.5, 0.0),
            adamjax.bias_correction_factors(rms),
            adamjax.signal_to_noise(rms),
        )

    (f1, f2), eta, (r1, r2), snr = measure(g)
    np.testing.assert_allclose(float(f1["w"]), 0.1, rtol=1e-6)
    assert float(f2["w"]) == 1.0  # an infinity norm is not corrected
    # Adamax's step size has no root: lr / (u + eps), u = |g| + 1e-8
    np.testing.assert_allclose(eta["w"], 0.5 / (np.array([1.0, 2.0, 0.0]) + 1e-8), rtol=1e-6)
    assert float(r1["w"]) == 1.0  # RMSProp keeps no first moment
    np.testing.assert_allclose(float(r2["w"]), 0.1, rtol=1e-6)
    # a zero second moment gives a zero signal-to-noise ratio, not NaN
    np.testing.assert_allclose(snr["w"], [1 / np.sqrt(0.1), -1 / np.sqrt(0.1), 0.0], rtol=1e-6)


def test_state_dtypes_trees_and_empty_leaves() -> None:
    params = {
        "half": jnp.ones(3, jnp.bfloat16),
        "complex": jnp.ones(2, jnp.complex64),
        "empty": jnp.zeros((0, 3), jnp.float32),
        "none": None,
        "nested": [jnp.ones((), jnp.float32)],
    }
    grads = {
        "half": jnp.asarray([1.0, -1.0, 2.0], jnp.bfloat16),
        "complex": jnp.asarray([1 + 1j, -2j], jnp.complex64),
        "empty": jnp.zeros((0, 3), jnp.float32),
        "none": None,
        "nested": [jnp.asarray(3.0, jnp.float32)],
    }
    opt = _adam_chain(0.1, 0.9, 0.999, 1e-8, 0.0, True)
    state = opt.init(params)
    diag = state[1]
    # three arrays whatever the number of leaves: 4 leaves (None is not one)
    assert diag.factors.shape == (2, 4) and diag.summaries.shape == (5, 4)
    assert diag.summaries.dtype == jnp.float32
    for _ in range(2):
        _, state = jax.jit(opt.update)(grads, state, params)
    diag = state[1]
    assert diag.summaries.dtype == jnp.float32 and diag.factors.dtype == jnp.float32
    assert diag.update_rms["none"] is None
    assert float(diag.update_rms["empty"]) == 0.0
    assert set(diag.as_dict()) == {"bias_correction1", "bias_correction2", *FIELDS[2:]}
    # with steady gradients every entry's |m_hat| / sqrt(v_hat) is 1 and the update is lr
    for key in ("half", "complex"):
        tolerance = 1e-2 if key == "half" else 1e-5  # m and v are stored in bfloat16
        np.testing.assert_allclose(float(diag.snr_mean[key]), 1.0, rtol=tolerance)
        np.testing.assert_allclose(float(diag.update_rms[key]), 0.1, rtol=tolerance)
    np.testing.assert_allclose(float(diag.update_rms["nested"][0]), 0.1, rtol=1e-5)
    # one float64 leaf makes every summary float64
    wide = {"w": jnp.ones(2, jnp.float32), "d": jnp.ones(2, jnp.float64)}
    assert opt.init(wide)[1].summaries.dtype == jnp.float64


def test_corrected_false_summarizes_the_moments_as_they_are() -> None:
    """RMSProp has no bias correction: its monitor takes corrected=False."""
    params, grads = _problem(jnp.float64, seed=6)
    lr, b2, eps = 0.01, 0.9, 1e-8
    opt = adamjax.chain(
        adamjax.moments(None, b2),
        adamjax.monitor(lr, eps, corrected=False),
        adamjax.normalize(eps),
        adamjax.scale_by_learning_rate(lr),
    )
    _, states = _run(opt, params, grads[:5])
    v = {k: np.zeros(s) for k, s in SHAPES.items()}
    for i, g in enumerate(grads[:5]):
        for key in SHAPES:
            v[key] = b2 * v[key] + (1 - b2) * np.asarray(g[key]) ** 2
            eta = lr / (np.sqrt(v[key]) + eps)
            got = _at(states[1], i)
            np.testing.assert_allclose(got.step_size_mean[key], np.mean(eta), rtol=1e-12)
            np.testing.assert_allclose(got.step_size_max[key], np.max(eta), rtol=1e-12)
            np.testing.assert_allclose(got.bias_correction2[key], 1 - b2 ** (i + 1), rtol=1e-12)
            assert float(got.bias_correction1[key]) == 1.0


def test_monitor_under_jit_does_not_recompile_and_under_vmap_matches_members() -> None:
    params, grads = _problem(jnp.float32, seed=4)
    stacked_grads = jax.tree.map(lambda *g: jnp.stack(g), *grads[:5])

    @chex.assert_max_traces(n=2)  # once under vmap, once for all three single runs
    def train(params: dict, lr: Any) -> Any:
        opt = _adam_chain(lr, 0.9, 0.999, 1e-8, 0.0, True)

        def body(carry: Any, g: dict) -> tuple[Any, None]:
            params, state = carry
            updates, state = opt.update(g, state, params)
            return (adamjax.apply_updates(params, updates), state), None

        return jax.lax.scan(body, (params, opt.init(params)), stacked_grads)[0][1][1]

    rates = [1e-3, 1e-2, 1e-1]
    members = jax.jit(jax.vmap(train, in_axes=(None, 0)))(params, jnp.asarray(rates))
    one = jax.jit(train)
    alone = [one(params, jnp.asarray(lr, jnp.float32)) for lr in rates]
    for i, single in enumerate(alone):
        chex.assert_trees_all_close(_at(members, i), single, rtol=1e-6)
    step_sizes = [float(s.step_size_mean["w"]) for s in alone]
    np.testing.assert_allclose(
        np.array(step_sizes) / np.array(rates), step_sizes[0] / 1e-3, rtol=1e-6
    )


def test_state_can_be_donated() -> None:
    params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
    opt = _adam_chain(0.1, 0.9, 0.999, 1e-8, 0.0, True)
    state = opt.init(params)
    buffers = [leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(state)]
    assert len(set(buffers)) == len(buffers)  # no two leaves share a buffer
    step = jax.jit(lambda p, s, g: opt.update(g, s, p), donate_argnums=(1,))
    for _ in range(2):
        _, state = step(params, state, {"w": jnp.ones(3), "b": jnp.ones(())})
    assert int(state[1].count) == 2


def test_every_k_records_on_every_kth_step_only() -> None:
    params, grads = _problem(jnp.float32, seed=5)
    every = adamjax.chain(
        adamjax.moments(0.9, 0.999),
        adamjax.monitor(0.01, every=3),
        adamjax.bias_correction(),
        adamjax.normalize(1e-8),
        adamjax.scale_by_learning_rate(0.01),
    )
    _, sparse = _run(every, params, grads[:7])
    _, dense = _run(_adam_chain(0.01, 0.9, 0.999, 1e-8, 0.0, True), params, grads[:7])
    sparse, dense = sparse[1], dense[1]
    np.testing.assert_array_equal(sparse.count, dense.count)  # follows every step
    np.testing.assert_array_equal(sparse.bias_correction2["w"], dense.bias_correction2["w"])
    got = np.asarray(sparse.update_rms["w"])
    want = np.asarray(dense.update_rms["w"])
    # steps 1..7: nothing before t = 3, t = 3's values until t = 6, then t = 6's
    np.testing.assert_array_equal(got[:2], 0.0)
    np.testing.assert_allclose(got[2:5], want[2], rtol=1e-6)
    np.testing.assert_allclose(got[5:], want[5], rtol=1e-6)


def _every_chain(every: int) -> Any:
    return adamjax.chain(
        adamjax.moments(0.9, 0.999),
        adamjax.monitor(0.01, every=every),
        adamjax.bias_correction(),
        adamjax.normalize(1e-8),
        adamjax.scale_by_learning_rate(0.01),
    )


def test_every_k_under_vmap_records_each_member_on_its_own_steps() -> None:
    """Members whose counts are out of step: each keeps exactly the summaries it has alone."""
    params, grads = _problem(jnp.float32, seed=6)
    opt = _every_chain(3)
    offsets = [0, 1, 2, 4]  # member i has taken offsets[i] steps before the common ones
    one = jax.jit(lambda s, g: opt.update(g, s, params)[1])  # a member alone, unbatched

    def warmed_up(offset: int) -> Any:
        state = opt.init(params)
        for g in grads[10 : 10 + offset]:
            state = one(state, g)
        return state

    states = jax.tree.map(lambda *s: jnp.stack(s), *[warmed_up(k) for k in offsets])
    step = jax.jit(jax.vmap(lambda s, g: opt.update(g, s, params)[1], in_axes=(0, None)))
    alone = [warmed_up(k) for k in offsets]
    for g in grads[:7]:
        states = step(states, g)
        alone = [one(s, g) for s in alone]
        for i, single in enumerate(alone):
            np.testing.assert_allclose(
                np.asarray(_at(states, i)[1].summaries),
                np.asarray(single[1].summaries),
                rtol=1e-6,
                err_msg=f"member {i}",
            )
    # every member has recorded by now, each at its own last multiple of 3
    assert all(np.all(np.asarray(s[1].summaries) != 0) for s in alone)


@pytest.mark.slow
def test_every_k_under_vmap_keeps_a_branch() -> None:
    """Under vmap the summaries sit behind a conditional, not a select of both branches."""
    params, grads = _problem(jnp.float32, seed=6)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)

    def step(opt: Any) -> str:
        update = jax.vmap(lambda s, g: opt.update(g, s, params)[1], in_axes=(0, None))
        states = jax.vmap(opt.init)(stacked)
        text = jax.jit(update).lower(states, grads[0]).compile().as_text()
        assert text is not None
        return text

    assert "conditional(" in step(_every_chain(10))
    assert "conditional(" not in step(_every_chain(1))
