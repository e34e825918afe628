"""A whole training step on a deep MLP: params as a tree against ``adamjax.flat`` params.

``value_and_grad`` + ``adamjax.adam`` + apply, params and state donated, for ``--layers`` tanh
layers of width ``--width`` on a batch of 64; flat params are read through ``unravel()``.

    python -m benchmarks.train_step --layers 100 --width 64
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

import adamjax
from benchmarks import harness


def make_problem(layers: int, width: int) -> tuple[Any, Callable[[Any], jax.Array]]:
    """MLP params (a dict per layer) and a loss of the params on a fixed batch."""
    key = jax.random.key(0)
    normal = lambda i, shape: jax.random.normal(jax.random.fold_in(key, i), shape)  # noqa: E731
    names = [f"layer{i:03d}" for i in range(layers)]
    params = {name: {"w": normal(i, (width, width)) / width**0.5, "b": jnp.zeros(width)}
              for i, name in enumerate(names)}  # fmt: skip
    x, y = normal(10_000, (64, width)), jnp.tanh(normal(10_001, (64, width)))

    def loss(p: Any) -> jax.Array:
        h = x
        for name in names:
            h = jnp.tanh(h @ p[name]["w"] + p[name]["b"])
        return jnp.mean((h - y) ** 2)

    return params, loss


def contender(name: str, params: Any, loss: Callable[[Any], jax.Array]) -> harness.Contender:
    optimizer = adamjax.adam(1e-3)
    read = (lambda p: p.unravel()) if name == "flat" else (lambda p: p)

    def step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(lambda p: loss(read(p)))(params)
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state, value

    return harness.step_contender(name, step, (params, optimizer.init(params)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "10 layers (unless given), 3 rounds")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args(argv)
    rounds, batch_seconds = harness.start(args, full=(11, 30), quick=(3, 5))
    layers = args.layers or (10 if args.quick else 100)
    params, loss = make_problem(layers, args.width)
    flat = adamjax.flat.ravel(params)
    contenders = [contender("tree", params, loss), contender("flat", flat, loss)]
    rows = harness.timed_rows(contenders, rounds, batch_seconds, "tree")
    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(f"MLP {layers} x {args.width}: {len(jax.tree.leaves(params))} leaves, {n_params:,} "
          "params, batch 64\n")  # fmt: skip
    print(harness.markdown(["layout", *harness.columns("tree")], rows))
    harness.finish(args.json, rows)


if __name__ == "__main__":
    main()
