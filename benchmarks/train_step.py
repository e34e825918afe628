"""A whole training step on a deep MLP: params as a tree against ``adamjax.flat`` params.

The optimizer-only benchmarks pass gradients in from outside. In training the gradient is
computed inside the same jitted step, and with flat parameters the model reads its weights
through ``FlatParams.unravel()``: every leaf is a slice of a buffer (XLA copies a slice that
feeds a matrix product) and the gradient is assembled by one concatenation. This measures that
whole step, ``value_and_grad`` + ``adamjax.adam`` update + apply, jitted with params and state
donated, for an MLP of ``--layers`` tanh layers of width ``--width`` (2 leaves per layer) on a
batch of 64, in both layouts, interleaved.

Reported per layout: trace + compile seconds, fusions in the optimized HLO, temporary bytes
from ``memory_analysis()`` and the median step time (p10-p90).

    python -m benchmarks.train_step --layers 100 --width 64
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax


def make_problem(layers: int, width: int) -> tuple[Any, Callable[[Any], jax.Array]]:
    """MLP params (a dict per layer) and a loss of the params on a fixed batch."""
    key = jax.random.key(0)
    params = {
        f"layer{i:03d}": {
            "w": jax.random.normal(jax.random.fold_in(key, i), (width, width)) / width**0.5,
            "b": jnp.zeros(width),
        }
        for i in range(layers)
    }
    x = jax.random.normal(jax.random.fold_in(key, 10_000), (64, width))
    y = jnp.tanh(jax.random.normal(jax.random.fold_in(key, 10_001), (64, width)))

    def loss(p: Any) -> jax.Array:
        h = x
        for i in range(layers):
            layer = p[f"layer{i:03d}"]
            h = jnp.tanh(h @ layer["w"] + layer["b"])
        return jnp.mean((h - y) ** 2)

    return params, loss


def steps(loss: Callable[[Any], jax.Array]) -> dict[str, Callable[..., Any]]:
    optimizer = adamjax.adam(1e-3)

    def tree_step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state, value

    def flat_step(params: Any, state: Any) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(lambda p: loss(p.unravel()))(params)
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state, value

    return {"tree": tree_step, "flat": flat_step, "init": optimizer.init}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)

    params, loss = make_problem(args.layers, args.width)
    fns = steps(loss)
    starts = {"tree": params, "flat": adamjax.flat.ravel(params)}
    prepared: dict[str, dict[str, Any]] = {}
    for name, start in starts.items():
        start = jax.tree.map(lambda x: jnp.array(x, copy=True), start)
        state = fns["init"](start)
        began = time.perf_counter()
        compiled = jax.jit(fns[name], donate_argnums=(0, 1)).lower(start, state).compile()
        compile_s = time.perf_counter() - began
        memory = compiled.memory_analysis()
        box = [start, state]

        def run(n: int, compiled: Any = compiled, box: list = box) -> None:
            for _ in range(n):
                p, s, _ = compiled(box[0], box[1])
                box[:] = [p, s]
                jax.block_until_ready(box)

        run(2)
        prepared[name] = {
            "run": run,
            "compile_s": compile_s,
            "fusions": len(re.findall(r" fusion\(", compiled.as_text() or "")),
            "temp_bytes": memory.temp_size_in_bytes if memory is not None else float("nan"),
        }

    samples: dict[str, list[float]] = {name: [] for name in prepared}
    for r in range(args.rounds):
        for name in list(prepared)[:: 1 if r % 2 else -1]:
            began = time.perf_counter()
            prepared[name]["run"](3)
            samples[name].append((time.perf_counter() - began) / 3)

    n_params = sum(x.size for x in jax.tree.leaves(params))
    leaves = len(jax.tree.leaves(params))
    print(f"MLP {args.layers} x {args.width}: {leaves} leaves, {n_params:,} params, batch 64\n")
    print("| layout | compile s | fusions | temp MB | median ms | p10-p90 ms |")
    print("|---|---|---|---|---|---|")
    for name, values in samples.items():
        entry = prepared[name]
        p10, median, p90 = np.percentile(values, [10, 50, 90]) * 1e3
        print(
            f"| {name} | {entry['compile_s']:.2f} | {entry['fusions']} | "
            f"{entry['temp_bytes'] / 1e6:.2f} | {median:.2f} | {p10:.2f}-{p90:.2f} |"
        )


if __name__ == "__main__":
    main()
