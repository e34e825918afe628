"""The make_moons task and the 2-10-1 MLP of the quickstart, shared by the ensemble examples.

1000 samples with noise 0.2, split 70/30; tanh hidden layer, one logit out, binary
cross-entropy on logits; standard-normal weights and zero biases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

Params = dict[str, jax.Array]


def init_mlp(key: jax.Array, sizes: tuple[int, int, int] = (2, 10, 1)) -> Params:
    """Standard-normal weights and zero biases."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (sizes[0], sizes[1])),
        "b1": jnp.zeros(sizes[1]),
        "w2": jax.random.normal(k2, (sizes[1], sizes[2])),
        "b2": jnp.zeros(sizes[2]),
    }


def logits(params: Params, x: jax.Array) -> jax.Array:
    """One logit per row of ``x``."""
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return (hidden @ params["w2"] + params["b2"])[:, 0]


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Binary cross-entropy on logits (sigmoid and log fused, so no log(0))."""
    z = logits(params, x)
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def accuracy(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of rows whose logit has the sign of the label."""
    return jnp.mean((logits(params, x) > 0) == (y > 0.5))


def load_moons(seed: int = 42) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``x_train, x_test, y_train, y_test`` as float32 arrays."""
    x, y = make_moons(n_samples=1000, noise=0.2, random_state=seed)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=seed)
    x_train, x_test, y_train, y_test = (
        jnp.asarray(a, dtype=jnp.float32) for a in (x_train, x_test, y_train, y_test)
    )
    return x_train, x_test, y_train, y_test
