"""Hyperparameter sweeps in one compiled run: sampling, grids, results and no recompilation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import adamjax
from adamjax import sweep
from tests import reference as ref


def bowl(params: dict[str, jax.Array]) -> jax.Array:
    """x^2 + y^2, the objective of the random search in benchmarks/tuner.py."""
    return params["x"] ** 2 + params["y"] ** 2


def test_grid_lists_every_combination_last_name_fastest() -> None:
    configs = sweep.grid(learning_rate=[1e-3, 1e-2], b1=[0.8, 0.9, 0.95])
    np.testing.assert_array_equal(configs["learning_rate"], [1e-3] * 3 + [1e-2] * 3)
    np.testing.assert_array_equal(configs["b1"], [0.8, 0.9, 0.95] * 2)
    with pytest.raises(ValueError, match="no values for b1"):
        sweep.grid(learning_rate=[0.1], b1=[])


def test_sample_draws_within_bounds_reproducibly() -> None:
    spec = dict(
        learning_rate=sweep.log_uniform(1e-4, 1e-1),
        b1=(0.8, 0.999),
        b2=sweep.uniform(0.9, 0.9999),
        eps=[1e-8, 1e-6],
        weight_decay=0.0,
    )
    a, b = sweep.sample(500, 7, **spec), sweep.sample(500, 7, **spec)
    for name in spec:
        np.testing.assert_array_equal(a[name], b[name])
        assert a[name].shape == (500,)
    assert a["learning_rate"].min() >= 1e-4 and a["learning_rate"].max() < 1e-1
    # log-uniform: about half of the draws below the geometric midpoint
    assert 0.4 < np.mean(a["learning_rate"] < np.sqrt(1e-4 * 1e-1)) < 0.6
    assert a["b1"].min() >= 0.8 and a["b1"].max() < 0.999
    assert set(np.unique(a["eps"])) == {1e-8, 1e-6}
    np.testing.assert_array_equal(a["weight_decay"], 0.0)
    assert not np.array_equal(sweep.sample(5, 8, **spec)["b1"], a["b1"][:5])


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (dict(b1=(0.9, 0.8)), ValueError, r"uniform\(low, high\) needs finite low < high"),
        (dict(learning_rate=sweep.LogUniform(0.0, 1.0)), ValueError, "0 < low < high"),
        (dict(b1=(0.1, 0.2, 0.3)), ValueError, "b1: a tuple means uniform"),
        (dict(eps=[]), ValueError, "eps: a list means a choice"),
        (dict(b1="0.9"), TypeError, "b1 must be uniform"),
    ],
    ids=["reversed", "log-zero", "three-tuple", "empty-list", "string"],
)
def test_malformed_distributions_are_named(spec: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        sweep.sample(3, 0, **spec)


@pytest.mark.parametrize(
    ("unroll", "log_every"), [(1, 1), (4, 1), (7, 1), (1, 7), (4, 40), (2, 150), (1, 1000)]
)
def test_each_member_equals_the_reference_run_alone(unroll: int, log_every: int) -> None:
    """A random search's trials: Adam on x^2 + y^2 from per-trial starting points.

    ``unroll`` only changes how the compiled loop is laid out (7 does not divide the steps);
    ``log_every`` only which losses are kept (7 and 40 do not divide the steps either)."""
    n, steps = 6, 150
    configs = sweep.sample(
        n, 0, learning_rate=(1e-3, 0.3), b1=(0.8, 0.999), b2=(0.8, 0.999), eps=(1e-8, 1e-6)
    )
    rng = np.random.default_rng(1)
    starts = {"x": rng.uniform(-10, 10, n), "y": rng.uniform(-10, 10, n)}
    starts_ = jax.tree.map(jnp.asarray, starts)
    result = sweep.run(
        adamjax.adam,
        configs,
        bowl,
        starts_,
        steps,
        batched_params=True,
        unroll=unroll,
        log_every=log_every,
    )
    assert result.losses.shape == (n, -(-steps // min(log_every, steps)))
    for i in range(n):
        opt = ref.Adam(
            np.array([starts["x"][i], starts["y"][i]]),
            lr=configs["learning_rate"][i],
            b1=configs["b1"][i],
            b2=configs["b2"][i],
            eps=configs["eps"][i],
        )
        p = np.array([starts["x"][i], starts["y"][i]])
        curve = []
        for _ in range(steps):
            curve.append(np.sum(p**2))
            p = opt.step(p, 2 * p)
        np.testing.assert_allclose(result.losses[i], curve[::log_every], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(result.final_loss[i], np.sum(p**2), rtol=1e-9, atol=1e-12)
        trial = jax.tree.map(lambda leaf, i=i: leaf[i], result.params)
        chex.assert_trees_all_close(trial, {"x": p[0], "y": p[1]}, rtol=1e-9)
    assert result.best == int(np.argmin(result.final_loss))
    best = result.best_hyperparameters()
    assert set(best) == set(configs)
    assert best["learning_rate"] == pytest.approx(configs["learning_rate"][result.best])
    assert isinstance(best["b1"], float)


def test_shared_start_and_a_diverging_member_never_wins() -> None:
    configs = sweep.grid(learning_rate=[0.01, 0.1, 0.5])

    def quartic(params: dict[str, jax.Array], target: jax.Array) -> jax.Array:
        return jnp.sum((params["w"] - target) ** 4)

    params = {"w": jnp.zeros(3)}
    result = sweep.run(adamjax.sgd, configs, quartic, params, 30, args=(jnp.full(3, 2.0),))
    final = np.asarray(result.final_loss)
    assert not np.isfinite(final[2])  # lr 0.5 on a quartic blows up
    assert result.best in (0, 1) and np.isfinite(final[result.best])
    np.testing.assert_allclose(result.losses[:, 0], 3 * 2.0**4)  # every member starts at 0


def test_nothing_finite_means_no_best() -> None:
    result = sweep.run(
        adamjax.adam,
        {"learning_rate": np.array([0.1, 0.2])},
        bowl,
        {"x": jnp.asarray([jnp.nan, jnp.inf]), "y": jnp.zeros(2)},
        3,
        batched_params=True,
    )
    assert result.best == -1
    with pytest.raises(ValueError, match="no configuration finished with a finite loss"):
        result.best_hyperparameters()


def test_a_second_sweep_with_new_values_reuses_the_compiled_run() -> None:
    # counted by hand: one compiled run traces the loss several times (its gradient, the losses
    # it logs), a number sweep.run decides, so no fixed chex.assert_max_traces bound applies
    traces = []

    def traced_bowl(params: dict[str, jax.Array]) -> jax.Array:
        traces.append(None)
        return bowl(params)

    params = {"x": jnp.asarray(3.0), "y": jnp.asarray(-2.0)}
    first = sweep.run(
        adamjax.adam, sweep.sample(8, 0, learning_rate=(0.01, 0.1)), traced_bowl, params, 20
    )
    count = len(traces)
    second = sweep.run(
        adamjax.adam, sweep.sample(8, 1, learning_rate=(0.01, 0.1)), traced_bowl, params, 20
    )
    assert len(traces) == count
    assert not np.allclose(first.final_loss, second.final_loss)


def test_per_leaf_hyperparameters_in_a_sweep() -> None:
    configs = {"learning_rate": {"x": np.array([0.1, 0.2]), "y": 0.0}}
    params = {"x": jnp.asarray(1.0), "y": jnp.asarray(1.0)}
    result = sweep.run(adamjax.sgd, configs, bowl, params, 1)
    expected = {"x": np.asarray([1.0 - 0.2, 1.0 - 0.4]), "y": np.asarray([1.0, 1.0])}
    chex.assert_trees_all_close(result.params, expected, rtol=1e-7)
    assert result.best_hyperparameters()["learning_rate"] == {"x": 0.2, "y": 0.0}


def test_bad_runs_are_rejected_with_the_name() -> None:
    params = {"x": jnp.zeros(3), "y": jnp.zeros(3)}
    with pytest.raises(ValueError, match="2 configurations but 3 starting points"):
        sweep.run(adamjax.adam, {"learning_rate": np.ones(2)}, bowl, params, 5, batched_params=True)
    with pytest.raises(ValueError, match=r"member 1: learning_rate must be >= 0.0"):
        sweep.run(adamjax.adam, {"learning_rate": np.array([0.1, -0.1])}, bowl, params, 5)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        sweep.run(adamjax.adam, {"learning_rate": np.ones(2)}, bowl, params, 0)
    with pytest.raises(ValueError, match="unroll must be an int >= 1"):
        sweep.run(adamjax.adam, {"learning_rate": np.ones(2)}, bowl, params, 5, unroll=0)
    with pytest.raises(ValueError, match="log_every must be an int >= 1"):
        sweep.run(adamjax.adam, {"learning_rate": np.ones(2)}, bowl, params, 5, log_every=0)
    with pytest.raises(ValueError, match="disagree on the number of configurations"):
        sweep.run(
            adamjax.adam, {"learning_rate": np.ones(2), "b1": np.full(3, 0.9)}, bowl, params, 5
        )
