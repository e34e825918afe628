"""Where the time of an Adam step on many small leaves goes, and which formulation removes it.

The same Adam step on ``--leaves`` leaves of ``--size`` float32 parameters, written several
ways (``--variants``, described in docs/performance.md) and timed side by side. XLA flags come
from ``XLA_FLAGS`` as usual, so the same command measures them.

    python -m benchmarks.many_leaves --leaves 500 --size 2000 [--variants optax adamjax ...]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import adamjax
from benchmarks import harness

LR = 1e-3
Step = Callable[[Any, Any, Any], tuple[Any, Any]]
NAMES = ("dispatch-only", "optax", "adamjax", "optax-flatten", "flat-state", "stacked-by-shape",
         "flat-params", "train-tree", "train-flat")  # fmt: skip


def tree_step(optimizer: Any, apply: Callable[[Any, Any], Any]) -> Step:
    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return apply(params, updates), state

    return step


def flat_state_step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
    flat_grads, unravel = ravel_pytree(grads)
    updates, state = adamjax.adam(LR).update(flat_grads, state)
    return adamjax.apply_updates(params, unravel(updates)), state


def kind(leaf: Any) -> str:
    return f"{jnp.shape(leaf)}{jnp.result_type(leaf)}"


def stack_by_shape(tree: Any) -> dict[str, jax.Array]:
    """Leaves of equal shape and dtype stacked, keyed by shape and dtype, in leaf order."""
    groups: dict[str, list[jax.Array]] = {}
    for leaf in jax.tree.leaves(tree):
        groups.setdefault(kind(leaf), []).append(leaf)
    return {key: jnp.stack(leaves) for key, leaves in groups.items()}


def stacked_step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
    updates, state = adamjax.adam(LR).update(stack_by_shape(grads), state)
    rows = {key: iter(stacked) for key, stacked in updates.items()}
    return jax.tree.map(lambda p: p + next(rows[kind(p)]), params), state


def train_step(read: Callable[[Any], Any]) -> Callable[[Any, Any], tuple[Any, Any]]:
    """The gradient of ``sum_i sum(p_i ** 2) / 2`` over ``read(params)``, then Adam."""
    adam = adamjax.adam(LR)

    def loss(params: Any) -> jax.Array:
        return 0.5 * sum((jnp.sum(p * p) for p in jax.tree.leaves(read(params))), jnp.zeros([]))

    def step(params: Any, state: Any) -> tuple[Any, Any]:
        updates, state = adam.update(jax.grad(loss)(params), state, params)
        return adamjax.apply_updates(params, updates), state

    return step


def variants(params: Any, grads: Any) -> dict[str, tuple[Callable[..., Any], Any, Any, tuple]]:
    """name -> (step, params, state, constant args)."""
    flat, flat_grads = adamjax.flat.ravel(params), adamjax.flat.ravel(grads)
    adam, ox, flattened = adamjax.adam(LR), optax.adam(LR), optax.flatten(optax.adam(LR))
    return {
        "dispatch-only": (lambda p, s, g: (p, s), params, ox.init(params), (grads,)),
        "optax": (tree_step(ox, optax.apply_updates), params, ox.init(params), (grads,)),
        "adamjax": (tree_step(adam, adamjax.apply_updates), params, adam.init(params), (grads,)),
        "optax-flatten": (tree_step(flattened, optax.apply_updates), params,
                          flattened.init(params), (grads,)),
        "flat-state": (flat_state_step, params, adam.init(ravel_pytree(params)[0]), (grads,)),
        "stacked-by-shape": (stacked_step, params, adam.init(stack_by_shape(params)), (grads,)),
        "flat-params": (tree_step(adam, adamjax.apply_updates), flat, adam.init(flat),
                        (flat_grads,)),
        "train-tree": (train_step(lambda p: p), params, adam.init(params), ()),
        "train-flat": (train_step(lambda p: p.unravel()), flat, adam.init(flat), ()),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "50 leaves of 200 (unless given), 3 rounds")
    parser.add_argument("--leaves", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--variants", nargs="+", choices=NAMES, default=list(NAMES))
    args = parser.parse_args(argv)
    rounds, batch_seconds = harness.timing(args, full=(15, 30), quick=(3, 5))
    leaves = args.leaves or (50 if args.quick else 500)
    size = args.size or (200 if args.quick else 2000)
    print(harness.header(f"; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"), flush=True)
    rng = np.random.default_rng(0)
    params, grads = ({f"p{i:04d}": rng.standard_normal(size, dtype=np.float32)
                      for i in range(leaves)} for _ in range(2))  # fmt: skip
    table, contenders = variants(params, grads), []
    for name in args.variants:
        step, start, state, constant = table[name]
        contenders.append(harness.step_contender(name, step, (start, state), constant))
        contenders[-1].info["arrays_in"] = len(jax.tree.leaves((start, state, constant)))
        print(f"compiled {name}: {contenders[-1].info['compile_s']:.1f} s", flush=True)
    samples = harness.interleaved(contenders, rounds, batch_seconds)
    print(f"\n{leaves} leaves x {size} float32; {rounds} interleaved rounds\n")
    base = "optax" if "optax" in samples else args.variants[0]
    rows = harness.rows(contenders, samples, base)
    rows = [[r[0], c.info["arrays_in"], *r[1:]] for r, c in zip(rows, contenders, strict=True)]
    print(harness.markdown(["formulation", "arrays in", *harness.columns(base)], rows))
    print(f"\nload average after: {harness.load_average()}")


if __name__ == "__main__":
    main()
