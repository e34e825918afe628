"""adamjax inside flax (NNX and linen), equinox, orbax-checkpoint and optax's wrappers.

Each library's training loop must take the steps a plain adamjax loop takes on the same arrays,
each optax wrapper around an adamjax optimizer the steps of the same wrapper around the matching
optax optimizer, and a run resumed from an orbax checkpoint the steps of an uninterrupted one.
Models are float64 so that comparisons across libraries can be tight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import chex
import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from flax.training import train_state

import adamjax
from tests import reference as ref
from tests.typed import as_optax, unchecked

pytestmark = pytest.mark.slow  # whole training runs with other libraries; CI runs them

F64 = jnp.float64


def _data(n: int = 32) -> tuple[jax.Array, jax.Array]:
    x = jax.random.uniform(jax.random.key(0), (n, 2), F64, -1.0, 1.0)
    y = jnp.sin(3.0 * x[:, :1]) * jnp.cos(2.0 * x[:, 1:])
    return x, y


def _assert_moved(trained: Any, initial: Any) -> None:
    """Every leaf changed: the comparisons below are about real training."""
    for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(initial), strict=True):
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def _replay(
    optimizer: Any, params: Any, grads: list[Any], **extra_args: list[Any]
) -> tuple[Any, Any]:
    """A plain adamjax loop fed recorded gradients: ``optimizer.update`` (with
    ``extra_args[name][i]`` at step ``i``), then ``adamjax.apply_updates``; the final params and
    state."""

    @jax.jit
    def step(params: Any, state: Any, grads: Any, extras: dict) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params, **extras)
        return adamjax.apply_updates(params, updates), state

    state = optimizer.init(params)
    for i, g in enumerate(grads):
        params, state = step(params, state, g, {k: v[i] for k, v in extra_args.items()})
    return params, state


# ----------------------------------------------------------------------------------- flax NNX


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(2, 16, param_dtype=F64, rngs=rngs)
        self.out = nnx.Linear(16, 1, param_dtype=F64, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.hidden(x)))


def _nnx_params(model: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _kernels(tree: Any) -> Any:
    return jax.tree.map(lambda p: p.ndim == 2, tree)


def _nnx_train(
    model: nnx.Module, optimizer: nnx.Optimizer, steps: int, *, pass_loss: bool = False
) -> tuple[list[dict], list[jax.Array]]:
    """Full-batch MSE steps through ``optimizer.update`` (with ``value=loss`` if
    ``pass_loss``); the gradients and the loss of every step."""
    x, y = _data()

    @nnx.jit
    def step(model: nnx.Module, optimizer: nnx.Optimizer) -> tuple[Any, jax.Array]:
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        if pass_loss:
            optimizer.update(model, grads, value=loss)
        else:
            optimizer.update(model, grads)
        return grads, loss

    grads, losses = [], []
    for _ in range(steps):
        g, loss = step(model, optimizer)
        grads.append(nnx.to_pure_dict(g))
        losses.append(loss)
    return grads, losses


def _check_against_reference_adamw(
    initial: Any,
    grads: list[Any],
    trained: Any,
    weight_decay: Callable[[int], float],
    **hyperparameters: float,
) -> None:
    """``trained`` is AdamW from the NumPy reference, leaf by leaf, fed the same gradients;
    ``weight_decay(ndim)`` is each leaf's decay."""
    for i, ((path, start), got) in enumerate(
        zip(jax.tree_util.tree_leaves_with_path(initial), jax.tree.leaves(trained), strict=True)
    ):
        leaf_grads = [np.asarray(jax.tree.leaves(g)[i]) for g in grads]
        history = ref.run(
            ref.AdamW,
            start,
            leaf_grads,
            weight_decay=weight_decay(np.ndim(start)),
            **hyperparameters,
        )
        np.testing.assert_allclose(
            got, history[-1], rtol=1e-10, atol=0.0, err_msg=jax.tree_util.keystr(path)
        )


def test_nnx_optimizer_applies_exactly_the_adamjax_step() -> None:
    model = NnxMLP(nnx.Rngs(0))
    initial = _nnx_params(model)
    make = lambda: adamjax.adamw(1e-2, weight_decay=1e-2, mask=_kernels)  # noqa: E731
    optimizer = nnx.Optimizer(model, as_optax(make()), wrt=nnx.Param)
    grads, losses = _nnx_train(model, optimizer, steps=20)
    trained = _nnx_params(model)

    assert int(optimizer.step[...]) == 20
    assert float(losses[-1]) < 0.8 * float(losses[0])
    _assert_moved(trained, initial)
    chex.assert_trees_all_equal(trained, _replay(make(), initial, grads)[0], strict=True)
    # AdamW with the decay on the kernels only
    _check_against_reference_adamw(
        initial, grads, trained, lambda ndim: 1e-2 if ndim == 2 else 0.0, lr=1e-2
    )


def test_nnx_per_leaf_values_are_an_nnx_state_keyed_like_the_params() -> None:
    rates = {"hidden": {"kernel": 1e-2, "bias": 3e-2}, "out": {"kernel": 1e-3, "bias": 2e-3}}
    decays = {"hidden": {"kernel": 0.99, "bias": 0.9}, "out": {"kernel": 0.999, "bias": 0.95}}
    model = NnxMLP(nnx.Rngs(1))
    initial = _nnx_params(model)
    optimizer = nnx.Optimizer(
        model, as_optax(adamjax.adam(nnx.State(rates), b2=nnx.State(decays))), wrt=nnx.Param
    )
    grads, _ = _nnx_train(model, optimizer, steps=10)
    _assert_moved(_nnx_params(model), initial)
    chex.assert_trees_all_equal(
        _nnx_params(model), _replay(adamjax.adam(rates, b2=decays), initial, grads)[0], strict=True
    )
    # Adam's first step moves every entry by its leaf's learning rate
    first = _replay(adamjax.adam(rates, b2=decays), initial, grads[:1])[0]
    for layer in rates:
        for name, rate in rates[layer].items():
            moved = np.abs(np.asarray(first[layer][name]) - np.asarray(initial[layer][name]))
            np.testing.assert_allclose(moved, rate, rtol=1e-4)  # eps aside


def test_nnx_refuses_per_leaf_trees_built_differently_from_its_state() -> None:
    model = NnxMLP(nnx.Rngs(0))
    x, y = _data()
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    as_dict = adamjax.adam(jax.tree.map(lambda _: 1e-2, _nnx_params(model)))
    with pytest.raises(ValueError, match=r"learning_rate has tree structure .* but params has"):
        nnx.Optimizer(model, as_optax(as_dict), wrt=nnx.Param).update(model, grads)
    fixed_mask = jax.tree.map(lambda p: p.ndim == 2, nnx.as_pure(nnx.state(model, nnx.Param)))
    with pytest.raises(ValueError, match=r"mask\['hidden'\]\['bias'\] is a single leaf"):
        nnx.Optimizer(model, as_optax(adamjax.adamw(1e-2, mask=fixed_mask)), wrt=nnx.Param)


# --------------------------------------------------------------------------------- flax linen


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        hidden = jnp.tanh(nn.Dense(16, param_dtype=F64, name="hidden")(x))
        return nn.Dense(1, param_dtype=F64, name="out")(hidden)


def test_linen_train_state_applies_exactly_the_adamjax_step() -> None:
    x, y = _data()
    model = LinenMLP()
    initial = model.init(jax.random.key(2), x)["params"]
    make = lambda: adamjax.adamw(3e-2, b1=0.8, weight_decay=1e-3)  # noqa: E731
    state = train_state.TrainState.create(apply_fn=model.apply, params=initial, tx=as_optax(make()))

    @jax.jit
    def step(state: train_state.TrainState) -> tuple[train_state.TrainState, Any, jax.Array]:
        loss_fn = lambda p: jnp.mean((state.apply_fn({"params": p}, x) - y) ** 2)  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), grads, loss

    grads, losses = [], []
    for _ in range(25):
        state, g, loss = step(state)
        grads.append(g)
        losses.append(loss)

    assert int(state.step) == 25
    opt_state = cast(tuple[adamjax.MomentsState, ...], state.opt_state)  # flax: any tree
    assert int(opt_state[0].count) == 25
    assert float(losses[-1]) < 0.8 * float(losses[0])
    _assert_moved(state.params, initial)
    chex.assert_trees_all_equal(state.params, _replay(make(), initial, grads)[0], strict=True)
    _check_against_reference_adamw(initial, grads, state.params, lambda ndim: 1e-3, lr=3e-2, b1=0.8)


# ----------------------------------------------------------------------------------- equinox


class Regressor(eqx.Module):
    mlp: eqx.nn.MLP
    columns: jax.Array  # integer buffer, never trained

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.mlp(x[self.columns])


def _regressor() -> Regressor:
    mlp = eqx.nn.MLP(2, 1, 16, 1, activation=jnp.tanh, dtype=F64, key=jax.random.key(3))
    return Regressor(mlp, columns=jnp.array([1, 0]))


def _regressor_loss(model: Regressor) -> jax.Array:
    x, y = _data()
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _equinox_train(optimizer: Any, steps: int) -> tuple[Regressor, list[Any], list[jax.Array]]:
    """``eqx.filter_jit`` steps; the trained model, the gradients and the loss of every step."""

    @eqx.filter_jit
    def step(model: Regressor, opt_state: Any) -> tuple[Regressor, Any, Any, jax.Array]:
        loss, grads = eqx.filter_value_and_grad(_regressor_loss)(model)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, grads, loss

    model = _regressor()
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    grads, losses = [], []
    for _ in range(steps):
        model, opt_state, g, loss = step(model, opt_state)
        grads.append(g)
        losses.append(loss)
    return model, grads, losses


def test_equinox_filtered_training_applies_exactly_the_adamjax_step() -> None:
    make = lambda: adamjax.adamw(1e-2, weight_decay=1e-3)  # noqa: E731
    trained, grads, losses = _equinox_train(make(), steps=20)
    initial = eqx.filter(_regressor(), eqx.is_inexact_array)
    params = eqx.filter(trained, eqx.is_inexact_array)

    assert float(losses[-1]) < 0.8 * float(losses[0])
    _assert_moved(params, initial)
    # the plain loop sees the filtered trees, None leaves included
    chex.assert_trees_all_equal(params, _replay(make(), initial, grads)[0], strict=True)
    _check_against_reference_adamw(initial, grads, params, lambda ndim: 1e-3, lr=1e-2)
    np.testing.assert_array_equal(trained.columns, [1, 0])
    assert trained.mlp.activation is jnp.tanh


def test_equinox_integer_buffer_is_refused_naming_its_path() -> None:
    with pytest.raises(TypeError, match=r"params\.columns has dtype int"):
        adamjax.adam(1e-2).init(eqx.filter(_regressor(), eqx.is_array))


def test_equinox_mask_function_decays_what_optax_decays() -> None:
    def matrices(tree: Any) -> Any:
        return jax.tree.map(lambda p: p.ndim == 2, tree)

    with jax.numpy_dtype_promotion("standard"):  # optax promotes its step counter implicitly
        ours, grads, _ = _equinox_train(adamjax.adamw(2e-2, weight_decay=0.5, mask=matrices), 10)
        initial = eqx.filter(_regressor(), eqx.is_inexact_array)
        theirs = _replay(optax.adamw(2e-2, weight_decay=0.5, mask=matrices), initial, grads)[0]
        unmasked = _replay(adamjax.adamw(2e-2, weight_decay=0.5), initial, grads)[0]
    ours = eqx.filter(ours, eqx.is_inexact_array)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-12, atol=0.0)
    # the mask matters: without it the biases are decayed too and end elsewhere
    assert not np.allclose(ours.mlp.layers[0].bias, unmasked.mlp.layers[0].bias, rtol=1e-6)


def test_equinox_module_trees_are_per_leaf_values_not_functions() -> None:
    """A tree mapped over a model is a callable module: it is read as values, not called."""
    initial = eqx.filter(_regressor(), eqx.is_inexact_array)
    lr = jax.tree.map(lambda p: 2e-2 if p.ndim == 2 else 5e-3, initial)
    mask = jax.tree.map(lambda p: p.ndim == 2, initial)
    assert callable(lr) and callable(mask)
    with jax.numpy_dtype_promotion("standard"):
        # modules are callable: given as values, adamjax must read them as trees, not call them
        optimizer = adamjax.adamw(unchecked(lr), weight_decay=0.5, mask=unchecked(mask))
        ours, grads, _ = _equinox_train(optimizer, 10)

        def matrices(tree: Any) -> Any:
            return jax.tree.map(lambda p: p.ndim == 2, tree)

        labels = lambda tree: jax.tree.map(lambda p: "m" if p.ndim == 2 else "v", tree)  # noqa: E731
        by_groups = adamjax.partition(
            {
                "m": adamjax.adamw(2e-2, weight_decay=0.5, mask=matrices),
                "v": adamjax.adamw(5e-3, weight_decay=0.5, mask=matrices),
            },
            labels,
        )
        expected = _replay(by_groups, initial, grads)[0]
    chex.assert_trees_all_close(
        eqx.filter(ours, eqx.is_inexact_array), expected, rtol=1e-12, atol=0.0
    )


# ---------------------------------------------------------------------------- orbax-checkpoint


def test_orbax_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path: Any) -> None:
    x, y = (a.astype(jnp.float32) for a in _data())
    schedule = adamjax.schedules.warmup_cosine_decay(0.0, 5e-2, warmup_steps=4, decay_steps=12)
    optimizer = adamjax.adamw(schedule, weight_decay=1e-2, mu_dtype=jnp.bfloat16)
    initial = {"w": jnp.zeros((2, 1), jnp.float32), "b": jnp.zeros(1, jnp.float32)}

    def loss_fn(params: Any) -> jax.Array:
        return jnp.mean((x @ params["w"] + params["b"][None, :] - y) ** 2)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(jax.grad(loss_fn)(params), state, params)
        return adamjax.apply_updates(params, updates), state

    def train(params: Any, state: Any, steps: int) -> tuple[Any, Any]:
        for _ in range(steps):
            params, state = step(params, state)
        return params, state

    uninterrupted = train(initial, optimizer.init(initial), 12)
    params, state = train(initial, optimizer.init(initial), 5)
    path = tmp_path / "step_5"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, {"params": params, "opt_state": state})
        checkpointer.wait_until_finished()

    abstract_params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), initial)
    abstract_state = adamjax.abstract_init(optimizer, abstract_params)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(
            path, {"params": abstract_params, "opt_state": abstract_state}
        )

    chex.assert_trees_all_equal(restored, {"params": params, "opt_state": state}, strict=True)
    assert isinstance(restored["opt_state"][0], adamjax.MomentsState)
    assert restored["opt_state"][0].mu["w"].dtype == jnp.bfloat16
    assert int(restored["opt_state"][0].count) == 5
    resumed = train(restored["params"], restored["opt_state"], 7)
    assert float(loss_fn(resumed[0])) < 0.8 * float(loss_fn(initial))
    _assert_moved(resumed[0], params)
    chex.assert_trees_all_equal(resumed, uninterrupted, strict=True)


# ------------------------------------------------------------------------------ optax wrappers


def _random_grads(steps: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"w": jnp.asarray(rng.normal(size=(3, 2))), "b": jnp.asarray(rng.normal(size=2) + 0.3)}
        for _ in range(steps)
    ]


def _start() -> dict:
    return {"w": jnp.ones((3, 2), F64), "b": jnp.zeros(2, F64)}


def _trajectory(optimizer: Any, grads: list[dict]) -> list[dict]:
    """The params after each step of ``optimizer`` fed ``grads`` from :func:`_start`."""
    update = jax.jit(optimizer.update)
    params = _start()
    state = optimizer.init(params)
    out = []
    for g in grads:
        updates, state = update(g, state, params)
        params = adamjax.apply_updates(params, updates)
        out.append(params)
    return out


def test_multisteps_around_adamjax_matches_optax_and_accumulate_gradients() -> None:
    grads = _random_grads(12)
    with jax.numpy_dtype_promotion("standard"):  # MultiSteps' running mean promotes implicitly
        # MultiSteps accumulates in float32 unless told otherwise
        ours = _trajectory(
            optax.MultiSteps(
                as_optax(adamjax.adam(0.05)), every_k_schedule=4, accumulator_dtype=F64
            ),
            grads,
        )
        theirs = _trajectory(
            optax.MultiSteps(optax.adam(0.05), every_k_schedule=4, accumulator_dtype=F64), grads
        )
    accumulated = _trajectory(adamjax.accumulate_gradients(adamjax.adam(0.05), every_k=4), grads)
    chex.assert_trees_all_close(ours, theirs, rtol=1e-12, atol=0.0)
    chex.assert_trees_all_close(ours, accumulated, rtol=1e-12, atol=0.0)
    # Adam from the reference: one step per four micro-batches, with their mean
    for name, start in _start().items():
        means = [
            np.mean([np.asarray(g[name]) for g in grads[i : i + 4]], axis=0) for i in (0, 4, 8)
        ]
        expected = ref.run(ref.Adam, np.asarray(start), means, lr=0.05)
        for k in range(3):
            np.testing.assert_allclose(ours[4 * k + 3][name], expected[k], rtol=1e-12)
            np.testing.assert_array_equal(ours[4 * k][name], ours[4 * k + 2][name])  # waiting


def _injected_trajectory(
    factory: Callable[..., Any], grads: list[dict], changes: list[dict[str, float]]
) -> list[dict]:
    """``inject_hyperparams(factory)``, setting ``changes[i]`` in the state before step ``i``."""
    optimizer = optax.inject_hyperparams(factory)(learning_rate=1e-2)
    update = jax.jit(optimizer.update)
    params = _start()
    state = cast(optax.InjectHyperparamsState, optimizer.init(params))
    out = []
    for g, change in zip(grads, changes, strict=True):
        for name, value in change.items():
            state.hyperparams[name] = jnp.asarray(value, F64)
        updates, state = update(g, state, params)
        params = adamjax.apply_updates(params, updates)
        out.append(params)
    return out


def test_inject_hyperparams_around_adamjax_matches_optax_step_by_step() -> None:
    grads = _random_grads(9, seed=1)
    rates = [1e-2, 1e-2, 1e-2, 3e-3, 3e-3, 5e-2, 5e-2, 1e-3, 1e-3]
    lr_changes = [{"learning_rate": r} for r in rates]
    other_changes = [{}, {"b1": 0.5}, {}, {"b2": 0.9, "eps": 1e-3}, {}, {}, {"b1": 0.95}, {}, {}]
    with jax.numpy_dtype_promotion("standard"):  # optax.adam promotes its count implicitly
        theirs = _injected_trajectory(optax.adam, grads, lr_changes)
        theirs_other = _injected_trajectory(optax.adam, grads, other_changes)
    ours = _injected_trajectory(adamjax.adam, grads, lr_changes)  # strict promotion suffices
    ours_other = _injected_trajectory(adamjax.adam, grads, other_changes)
    chex.assert_trees_all_close(ours + ours_other, theirs + theirs_other, rtol=1e-12, atol=0.0)
    # the changed b1, b2 and eps took effect
    assert not np.allclose(ours_other[-1]["w"], ours[-1]["w"])
    # the learning-rate changes, against the reference given the same rates as a schedule
    for name, start in _start().items():
        expected = ref.run(
            ref.Adam,
            np.asarray(start),
            [np.asarray(g[name]) for g in grads],
            lr=lambda count: rates[count],
        )
        for actual, want in zip(ours, expected, strict=True):
            np.testing.assert_allclose(actual[name], want, rtol=1e-12)


def _plateau() -> Any:
    return optax.contrib.reduce_on_plateau(factor=0.5, patience=2, accumulation_size=5)


def _plateau_run(optimizer: Any, steps: int = 150) -> tuple[list[Any], Any]:
    """Mini-batch least squares with ``value=loss``: params after each step, final state."""
    kx, kn = jax.random.split(jax.random.key(4))
    x = jax.random.normal(kx, (256, 3), F64)
    y = x @ jnp.array([[1.0], [-2.0], [0.5]], F64) + 0.5 * jax.random.normal(kn, (256, 1), F64)

    @jax.jit
    def step(params: Any, state: Any, i: jax.Array) -> tuple[Any, Any]:
        batch = jax.random.randint(jax.random.fold_in(jax.random.key(5), i), (8,), 0, 256)
        loss_fn = lambda p: jnp.mean((x[batch] @ p["w"] - y[batch]) ** 2)  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = optimizer.update(grads, state, params, value=loss)
        return adamjax.apply_updates(params, updates), state

    params = {"w": jnp.zeros((3, 1), F64)}
    state = optimizer.init(params)
    out = []
    for i in range(steps):
        params, state = step(params, state, jnp.asarray(i))
        out.append(params)
    return out, state


def test_reduce_on_plateau_chained_after_adamjax_matches_optax_chain() -> None:
    with jax.numpy_dtype_promotion("standard"):  # reduce_on_plateau promotes implicitly
        ours, our_state = _plateau_run(adamjax.chain(adamjax.adam(0.05), _plateau()))
        theirs, their_state = _plateau_run(optax.chain(optax.adam(0.05), _plateau()))
    chex.assert_trees_all_close(ours, theirs, rtol=1e-12, atol=0.0)
    # the loss reached the plateau transform: it lowered the learning rate several times
    scale = float(our_state[1].scale)
    assert scale <= 0.125
    assert scale == float(their_state[1].scale)


def test_reduce_on_plateau_through_an_nnx_optimizer_matches_optax_chain() -> None:
    def make(adam: Callable[[float], Any], chain: Callable[..., Any]) -> Any:
        return chain(adam(0.2), optax.contrib.reduce_on_plateau(factor=0.5, patience=3))

    model = NnxMLP(nnx.Rngs(0))
    initial = _nnx_params(model)
    with jax.numpy_dtype_promotion("standard"):  # reduce_on_plateau promotes implicitly
        optimizer = nnx.Optimizer(model, make(adamjax.adam, adamjax.chain), wrt=nnx.Param)
        grads, losses = _nnx_train(model, optimizer, steps=40, pass_loss=True)
        expected, expected_state = _replay(
            make(optax.adam, optax.chain), initial, grads, value=losses
        )
    scale = float(optimizer.opt_state[1].scale[...])
    assert scale < 1.0
    assert scale == float(expected_state[1].scale)
    chex.assert_trees_all_close(_nnx_params(model), expected, rtol=1e-12, atol=0.0)
