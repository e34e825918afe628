"""Where the time of an Adam step on many small leaves goes, and which formulation removes it.

The same Adam step (lr 1e-3, float32, update + apply, jitted with params and state donated) on
``n`` leaves of ``size`` parameters each, written several ways and timed side by side
(interleaved rounds, as in ``benchmarks.adam_step``):

* ``optax.adam``, ``adamjax.adam``: the tree step, one compiled loop (or three) per leaf.
* ``dispatch only``: a jitted function with the tree step's inputs and outputs that computes
  nothing (returns the donated params and state): what crossing the jit boundary with
  ``4 n`` arrays in and ``3 n`` out costs by itself.
* ``optax.flatten(adam)``: optax's wrapper: state in one flat buffer; grads raveled and updates
  unraveled inside the step.
* ``flat state``: the same idea with adamjax (state on ``ravel_pytree`` of the params).
* ``stacked by shape``: leaves of equal shape and dtype stacked into one ``(k, *shape)`` array
  inside the step, state kept stacked.
* ``adamjax flat params``: ``adamjax.adam`` on ``adamjax.flat.ravel(params)``: params, grads
  and moments are one buffer each (the opt-in flat-parameter mode).
* ``train-tree``, ``train-flat``: a whole training step, gradients computed inside the jitted
  step (loss ``sum_i sum(p_i ** 2) / 2``, a cheap stand-in for a model touching every leaf),
  on the tree and on flat params read through ``unravel()``: what the flat mode saves when its
  gradient is assembled from per-leaf gradients (one concatenation) in every step. A real
  model's per-leaf work (and its compile time) comes on top, the same for both.

XLA compiles identical fused loops once, so leaves of one shape compile much faster than the
same number of leaves of different shapes (the ``transformer`` case of ``adam_step``).

For each: trace + compile seconds, the number of fusions (compiled loops) in the optimized HLO,
temporary bytes from ``memory_analysis()``, and the median step time with its p10-p90 spread.
XLA flags are read from the ``XLA_FLAGS`` environment variable as usual, so the same command
measures them, e.g. ``XLA_FLAGS=--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE``.

    python -m benchmarks.many_leaves --leaves 500 --size 2000
    python -m benchmarks.many_leaves --leaves 2000 --size 1000 --variants optax adamjax flat-params
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import adamjax

LR = 1e-3
Step = Callable[[Any, Any, Any], tuple[Any, Any]]


def _tree_step(optimizer: Any, apply: Callable[[Any, Any], Any]) -> Step:
    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return apply(params, updates), state

    return step


def _flat_state() -> tuple[Callable[[Any], Any], Step]:
    inner = adamjax.adam(LR)

    def init(params: Any) -> Any:
        return inner.init(ravel_pytree(params)[0])

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        flat_grads, unravel = ravel_pytree(grads)
        updates, state = inner.update(flat_grads, state)
        return adamjax.apply_updates(params, unravel(updates)), state

    return init, step


def _stacked_by_shape() -> tuple[Callable[[Any], Any], Step]:
    inner = adamjax.adam(LR)

    def groups(tree: Any) -> dict[str, list[int]]:
        keys: dict[str, list[int]] = {}
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            keys.setdefault(f"{jnp.shape(leaf)}{jnp.result_type(leaf)}", []).append(i)
        return keys

    def stack(tree: Any) -> dict[str, jax.Array]:
        leaves = jax.tree.leaves(tree)
        return {k: jnp.stack([leaves[i] for i in idx]) for k, idx in groups(tree).items()}

    def init(params: Any) -> Any:
        return inner.init(stack(params))

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = inner.update(stack(grads), state)
        leaves, treedef = jax.tree.flatten(params)
        out = list(leaves)
        for key, idx in groups(params).items():
            for row, i in enumerate(idx):
                out[i] = leaves[i] + updates[key][row]
        return jax.tree.unflatten(treedef, out), state

    return init, step


def _loss(tree: Any) -> jax.Array:
    return 0.5 * sum((jnp.sum(p * p) for p in jax.tree.leaves(tree)), jnp.zeros([]))


def _train_tree() -> tuple[Callable[[Any], Any], Step]:
    adam = adamjax.adam(LR)

    def step(params: Any, state: Any, data: Any) -> tuple[Any, Any]:
        del data
        grads = jax.grad(_loss)(params)
        updates, state = adam.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return adam.init, step


def _train_flat() -> tuple[Callable[[Any], Any], Step]:
    adam = adamjax.adam(LR)

    def step(params: Any, state: Any, data: Any) -> tuple[Any, Any]:
        del data
        grads = jax.grad(lambda p: _loss(p.unravel()))(params)
        updates, state = adam.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return adam.init, step


def _dispatch_only() -> tuple[Callable[[Any], Any], Step]:
    return optax.adam(LR).init, lambda params, state, grads: (params, state)


def variants(params: Any, grads: Any) -> dict[str, tuple[Callable[[Any], Any], Step, Any, Any]]:
    """name -> (init, step, params, grads)."""
    layout = adamjax.flat.ravel(params).layout
    adam, opt = adamjax.adam(LR), optax.adam(LR)
    flattened = optax.flatten(optax.adam(LR))
    return {
        "dispatch-only": (*_dispatch_only(), params, grads),
        "optax": (opt.init, _tree_step(opt, optax.apply_updates), params, grads),
        "adamjax": (adam.init, _tree_step(adam, adamjax.apply_updates), params, grads),
        "optax-flatten": (
            flattened.init, _tree_step(flattened, optax.apply_updates), params, grads
        ),
        "flat-state": (*_flat_state(), params, grads),
        "stacked-by-shape": (*_stacked_by_shape(), params, grads),
        "flat-params": (
            adam.init, _tree_step(adam, adamjax.apply_updates),
            layout.ravel(params), layout.ravel(grads),
        ),
        "train-tree": (*_train_tree(), params, None),
        "train-flat": (*_train_flat(), layout.ravel(params), None),
    }  # fmt: skip


def _fusions(hlo: str) -> int:
    return len(re.findall(r"^\s*(?:ROOT )?%\S+ = \S+ fusion\(", hlo, re.MULTILINE))


def prepare(init: Callable[[Any], Any], step: Step, params: Any, grads: Any) -> dict[str, Any]:
    """Compile (timed) and return a runner plus static facts."""
    params = jax.tree.map(lambda x: jnp.array(x, copy=True), params)
    state = init(params)
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    box = [params, state]

    def run(n: int) -> None:
        for _ in range(n):
            box[:] = compiled(box[0], box[1], grads)
            jax.block_until_ready(box)

    run(2)
    start = time.perf_counter()
    run(3)
    per_step = (time.perf_counter() - start) / 3
    return {
        "run": run,
        "batch": max(1, round(0.03 / per_step)),
        "compile_s": compile_s,
        "fusions": _fusions(compiled.as_text() or ""),
        "temp_bytes": memory.temp_size_in_bytes if memory is not None else float("nan"),
        "arrays_in": len(jax.tree.leaves((params, state, grads))),
    }


def main(argv: Sequence[str] | None = None) -> None:
    names = (
        "dispatch-only", "optax", "adamjax", "optax-flatten", "flat-state", "stacked-by-shape",
        "flat-params", "train-tree", "train-flat",
    )  # fmt: skip
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--leaves", type=int, default=500)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", nargs="+", choices=names, default=list(names))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    shapes = [(args.size,)] * args.leaves
    params = {f"p{i:04d}": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(shapes)}
    grads = {f"p{i:04d}": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(shapes)}
    params, grads = jax.tree.map(jnp.asarray, (params, grads))
    table = variants(params, grads)
    prepared = {}
    for name in args.variants:
        prepared[name] = prepare(*table[name])
        print(f"compiled {name}: {prepared[name]['compile_s']:.1f} s", flush=True)

    samples: dict[str, list[float]] = {name: [] for name in prepared}
    order = list(prepared)
    for r in range(args.rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            entry = prepared[name]
            start = time.perf_counter()
            entry["run"](entry["batch"])
            samples[name].append((time.perf_counter() - start) / entry["batch"])

    base = np.median(samples["optax"]) if "optax" in samples else float("nan")
    flags = os.environ.get("XLA_FLAGS", "")
    print(f"\n{args.leaves} leaves x {args.size} float32; XLA_FLAGS={flags!r}\n")
    print("| formulation | arrays in | fusions | compile s | temp MB | median ms | p10-p90 ms "
          "| vs optax |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, values in samples.items():
        entry = prepared[name]
        p10, median, p90 = np.percentile(values, [10, 50, 90]) * 1e3
        print(
            f"| {name} | {entry['arrays_in']} | {entry['fusions']} | {entry['compile_s']:.2f} | "
            f"{entry['temp_bytes'] / 1e6:.1f} | {median:.2f} | {p10:.2f}-{p90:.2f} | "
            f"{median / 1e3 / base:.2f} |"
        )


if __name__ == "__main__":
    main()
