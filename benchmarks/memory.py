"""Bytes per parameter of the memory-lean optimizers, and how well each trains.

For every optimizer: the optimizer state's bytes per parameter, summed over its leaves, and with
the params added; then the buffers XLA reports for the jitted step ``(params, state, grads) ->
(params, state)`` (``lower(...).compile().memory_analysis()``: argument, output and temporary
bytes, per parameter) on a model of two square matrices and a bias (1024 x 1024; 256 x 256 with
``--quick``). Next to each row, the quality: the final training loss (whole training set) of the
digits MLP of examples/low_precision.py trained with that optimizer for a fixed number of epochs
(the same initialisation and batches for every row). docs/memory.md shows the table.

    python -m benchmarks.memory [--quick] [--json PATH]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adamjax
from benchmarks import harness
from examples import low_precision

LR = low_precision.LEARNING_RATE

F32, BF16, INT8 = jnp.float32, jnp.bfloat16, adamjax.blockwise_int8()
ROWS: dict[str, tuple[Any, Any]] = {  # name -> (params dtype, optimizer)
    "adam, float32": (F32, adamjax.adam(LR)),
    "adam, bfloat16 moments": (F32, adamjax.adam(LR, mu_dtype=BF16, nu_dtype=BF16)),
    "adafactor, no param scaling": (F32, adamjax.adafactor(LR, multiply_by_parameter_scale=False)),
    "adam, 8-bit blockwise moments": (F32, adamjax.adam(LR, mu_dtype=INT8, nu_dtype=INT8)),
    "adam, bfloat16 params (plain)": (BF16, adamjax.adam(LR)),
    "compensated(adam), bfloat16 params": (BF16, adamjax.compensated(adamjax.adam(LR))),
}


def model(size: int, dtype: Any) -> dict[str, jax.Array]:
    """Two ``size x size`` matrices and a bias, standard normal, in ``dtype``."""
    rng = np.random.default_rng(0)
    shapes = {"w1": (size, size), "w2": (size, size), "b": (size,)}
    return {name: jnp.asarray(rng.normal(size=s)).astype(dtype) for name, s in shapes.items()}


def measure(dtype: Any, optimizer: Any, size: int, data: Any, epochs: int, name: str) -> dict:
    """Bytes per parameter: state and params (summed leaves) and the compiled step's buffers;
    the final training loss and test accuracy of the digits MLP after ``epochs``."""
    params = model(size, dtype)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.01), params)
    state = optimizer.init(params)
    count = sum(int(p.size) for p in jax.tree.leaves(params))
    _, info = harness.compile_step(jax.jit(harness.optimizer_step(optimizer)), params, state, grads)
    row = {"params": count, "state_B": harness.nbytes(state) / count}
    row["params_and_state_B"] = row["state_B"] + harness.nbytes(params) / count
    for key in ("argument", "output", "temp"):
        row[f"{key}_B"] = info.get(f"{key}_bytes", float("nan")) / count
    trained = low_precision.train(optimizer, low_precision.init_mlp(0, dtype), data, epochs, name)
    return {**row, "train_loss": trained["train_loss"], "test_accuracy": trained["test_accuracy"]}


def table(results: dict[str, dict[str, Any]], epochs: int) -> str:
    columns = ["optimizer", "params", "state B/param", "params + state B/param",
               "step argument B/param", "step output B/param", "step temp B/param",
               f"digits MLP train loss ({epochs} epochs)", "test accuracy"]  # fmt: skip
    rows = [
        [name, np.dtype(ROWS[name][0]).name, f"{r['state_B']:.2f}",
         f"{r['params_and_state_B']:.2f}", f"{r['argument_B']:.2f}", f"{r['output_B']:.2f}",
         f"{r['temp_B']:.2f}", f"{r['train_loss']:.4f}", f"{r['test_accuracy']:.3f}"]
        for name, r in results.items()
    ]  # fmt: skip
    return harness.markdown(columns, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "a 256 x 256 model, 5 epochs of training", False)
    args = parser.parse_args(argv)
    size, epochs = (256, 5) if args.quick else (1024, 60)
    print(harness.header())
    data = low_precision.load()
    results = {name: measure(*ROWS[name], size, data, epochs, name) for name in ROWS}
    count = next(iter(results.values()))["params"]
    print(f"\nmodel for the bytes: 2 x {size} x {size} + {size} = {count:,} params\n")
    print(table(results, epochs))
    harness.finish(args.json, {"size": size, "epochs": epochs, "rows": results})


if __name__ == "__main__":
    main()
