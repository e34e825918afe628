"""A check the family test files share: a batch of traced hyperparameters under ``vmap``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from adamjax import apply_updates

# The 100-step programs compile in half the time at level 0; results are unchanged.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})

Builder = Callable[[Any, Any], Any]  # (learning rate, the batched hyperparameter) -> optimizer
Reference = Callable[[str, float, float, int], dict]  # (name, lr, value, steps) -> params


def check_batch_equals_loop_and_reference(
    builders: Mapping[str, Builder],
    members: Mapping[str, Sequence[float]],
    rates: Sequence[float],
    loss: Callable[[Any], jax.Array],
    start: Mapping[str, np.ndarray],
    reference: Reference,
    steps: int = 6,
) -> None:
    """Each optimizer built inside ``jit`` from traced (learning rate, one more hyperparameter),
    ``vmap``-ed over the batch: equal to the loop over the batch (``lax.map``) and, member by
    member, to the float64 NumPy reference's steps; the members differ and all moved."""

    def train(name: str, lr: jax.Array, value: jax.Array) -> dict:
        opt = builders[name](lr, value)

        def body(_: Any, carry: tuple) -> tuple:
            params, state = carry
            updates, state = opt.update(jax.grad(loss)(params), state, params)
            return apply_updates(params, updates), state

        params = {k: jnp.asarray(v) for k, v in start.items()}
        return jax.lax.fori_loop(0, steps, body, (params, opt.init(params)))[0]

    def run(lr: jax.Array, values: dict) -> dict:
        return {name: train(name, lr, values[name]) for name in builders}

    values = {name: np.array(batch) for name, batch in members.items()}
    batched, looped = jax.device_get(
        fast_jit(lambda r, v: (jax.vmap(run)(r, v), jax.lax.map(lambda a: run(*a), (r, v))))(
            np.array(rates), values
        )
    )
    for name, batch in members.items():
        for i, (lr, value) in enumerate(zip(rates, batch, strict=True)):
            expected = reference(name, float(lr), value, steps)
            for key in start:
                np.testing.assert_allclose(
                    batched[name][key][i], looped[name][key][i], rtol=1e-12, atol=1e-15
                )
                np.testing.assert_allclose(
                    batched[name][key][i], expected[key], rtol=1e-10, atol=1e-14,
                    err_msg=f"{name} member {i} {key}",
                )  # fmt: skip
        assert not np.allclose(batched[name]["x"][0], batched[name]["x"][2])  # members differ
        assert not np.allclose(batched[name]["x"][0], start["x"])  # and moved


# A non-convex problem on a tree of a matrix and a vector: Rosenbrock's valley over six values.
ROSENBROCK = {"x": np.array([[-1.2, 1.0], [0.3, -0.4]]), "y": np.array([0.5, -0.8])}


def rosenbrock(params: Mapping[str, Any]) -> jax.Array:
    z = jnp.concatenate([params["x"].ravel(), params["y"]])
    return jnp.sum((z[1:] - z[:-1] ** 2) ** 2 + 0.01 * (1.0 - z[:-1]) ** 2)


def numpy_rosenbrock_grad(params: Mapping[str, np.ndarray]) -> dict:
    """The gradient of :func:`rosenbrock`, by hand."""
    z = np.concatenate([params["x"].ravel(), params["y"]])
    inner = z[1:] - z[:-1] ** 2
    grad = np.zeros_like(z)
    grad[:-1] = -4.0 * z[:-1] * inner - 0.02 * (1.0 - z[:-1])
    grad[1:] += 2.0 * inner
    return {"x": grad[:4].reshape(2, 2), "y": grad[4:]}


def numpy_rosenbrock_member(
    defaults: Mapping[str, dict], rules: Mapping[str, Any], batches: Mapping[str, tuple]
) -> Reference:
    """The :data:`Reference` of NumPy rules on :func:`rosenbrock`: ``steps`` steps of
    ``rules[name]`` with ``defaults[name]``, ``lr`` and the batched hyperparameter
    (``batches[name][1]``) set to ``value``, from :data:`ROSENBROCK`."""

    def member(name: str, lr: float, value: float, steps: int) -> dict:
        settings = dict(defaults[name], lr=lr, **{batches[name][1]: value})
        params = {k: v.copy() for k, v in ROSENBROCK.items()}
        rule = {k: rules[name](v.shape, v.dtype, **settings) for k, v in params.items()}
        for _ in range(steps):
            grads = numpy_rosenbrock_grad(params)
            params = {k: params[k] + rule[k].delta(params[k], grads[k]) for k in params}
        return params

    return member


def check_leaves_against_references(
    opt: Any,
    refs: Mapping[str, Any],
    params: dict[str, np.ndarray],
    rng: np.random.Generator,
    *,
    steps: int = 6,
    rtol: float,
    atol: float,
) -> None:
    """``steps`` updates of ``opt`` on ``params`` (float64) against each leaf's NumPy reference
    ``refs[k].delta(param, grad)``, on gradients whose scale spans five decades, leaf by leaf and
    step by step; the params move by the reference's update."""
    params = dict(params)
    state = opt.init(jax.tree.map(jnp.asarray, params))
    for t in range(steps):
        grads = {
            k: rng.normal(size=p.shape) * 10.0 ** rng.uniform(-3, 2) for k, p in params.items()
        }
        updates, state = opt.update(
            jax.tree.map(jnp.asarray, grads), state, jax.tree.map(jnp.asarray, params)
        )
        for k in params:
            expected = refs[k].delta(params[k], grads[k])
            np.testing.assert_allclose(
                np.asarray(updates[k]), expected, rtol=rtol, atol=atol, err_msg=f"{k} {t}"
            )
            params[k] = params[k] + expected
