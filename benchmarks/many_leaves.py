"""Where the time of an Adam step on many small leaves goes, and which formulation removes it.

The same Adam step on ``--leaves`` leaves of ``--size`` float32 parameters, written several
ways (``--variants``, described in docs/performance.md); run it under ``XLA_FLAGS`` to measure
them.

    python -m benchmarks.many_leaves --leaves 500 --size 2000 [--variants optax adamjax ...]
"""

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

import adamjax
from benchmarks import harness

LR = 1e-3
NAMES = ("dispatch-only", "optax", "adamjax", "optax-flatten", "flat-params", "train-tree",
         "train-flat")  # fmt: skip


def half_squares(tree: Any) -> jax.Array:
    """The loss of the train variants, ``sum_i sum(p_i ** 2) / 2`` over the leaves."""
    return 0.5 * sum((jnp.sum(p * p) for p in jax.tree.leaves(tree)), jnp.zeros([]))


def variants(params: Any, grads: Any) -> dict[str, tuple[Callable[..., Any], Any, Any, tuple]]:
    """name -> (step, params, state, constant args)."""
    flat, flat_grads = adamjax.flat.ravel(params), adamjax.flat.ravel(grads)
    adam, ox, flattened = adamjax.adam(LR), optax.adam(LR), optax.flatten(optax.adam(LR))
    tree_step = harness.optimizer_step
    flat_loss = lambda p: half_squares(p.unravel())  # noqa: E731
    return {
        "dispatch-only": (lambda p, s, g: (p, s), params, ox.init(params), (grads,)),
        "optax": (tree_step(ox, optax.apply_updates), params, ox.init(params), (grads,)),
        "adamjax": (tree_step(adam), params, adam.init(params), (grads,)),
        "optax-flatten": (tree_step(flattened, optax.apply_updates), params,
                          flattened.init(params), (grads,)),
        "flat-params": (tree_step(adam), flat, adam.init(flat), (flat_grads,)),
        "train-tree": (tree_step(adam, loss=half_squares), params, adam.init(params), ()),
        "train-flat": (tree_step(adam, loss=flat_loss), flat, adam.init(flat), ()),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "50 leaves of 200 (unless given), 3 rounds")
    parser.add_argument("--leaves", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--variants", nargs="+", choices=NAMES, default=list(NAMES))
    args = parser.parse_args(argv)
    flags = f"; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    rounds, batch_seconds = harness.start(args, full=(15, 30), quick=(3, 5), extra=flags)
    leaves = args.leaves or (50 if args.quick else 500)
    size = args.size or (200 if args.quick else 2000)
    params, grads = harness.random_trees(harness.leaf_shapes(leaves, size))
    table, contenders = variants(params, grads), []
    for name in args.variants:
        step, start, state, constant = table[name]
        contenders.append(harness.step_contender(name, step, (start, state), constant))
        contenders[-1].info["arrays_in"] = len(jax.tree.leaves((start, state, constant)))
        print(f"compiled {name}: {contenders[-1].info['compile_s']:.1f} s", flush=True)
    base = "optax" if "optax" in args.variants else args.variants[0]
    rows = harness.timed_rows(contenders, rounds, batch_seconds, base)
    rows = [[r[0], c.info["arrays_in"], *r[1:]] for r, c in zip(rows, contenders, strict=True)]
    print(f"\n{leaves} leaves x {size} float32\n")
    print(harness.markdown(["formulation", "arrays in", *harness.columns(base)], rows))
    harness.finish(args.json, rows)


if __name__ == "__main__":
    main()
