"""The Adam family against optax: one step and its compile, alias by alias, side by side.

For every alias adamjax shares with optax (``optax.contrib`` for three of them), on one float32
leaf of 2500 x 4000: ``update`` + ``apply_updates`` on a fixed gradient, jitted with params and
state donated, the two sides timed in interleaved rounds; the compile time (trace + XLA, the
median of rounds alternating the two sides; ``--quick``, a 1000 x 1000 leaf: the timed step's
own compile), the fusions of the compiled step, the optimizer state's bytes per parameter (its
arrays' ``nbytes``) and the bytes the compiled step reads and writes per parameter (XLA's cost
analysis). ``over target`` flags a step ratio above 1.10 or a compile ratio above 1.2.

    python -m benchmarks.family_step [--quick] [--aliases ...] [--rounds N] [--compiles N]
        [--json PATH]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax
import optax.contrib

import adamjax
from benchmarks import harness
from benchmarks.harness import Contender

LR = 1e-3
ALIASES = ("adam", "adamw", "nadam", "nadamw", "amsgrad", "adamax", "adamaxw", "radam",
           "adabelief", "yogi", "lion", "lamb", "adan", "adafactor", "ademamix", "adopt",
           "schedule_free_adamw")  # fmt: skip
IN_CONTRIB = ("ademamix", "adopt", "schedule_free_adamw")
SHAPE, QUICK_SHAPE = (2500, 4000), (1000, 1000)
STEP_TARGET, COMPILE_TARGET = 1.10, 1.2  # adamjax / optax, at most


def optimizers(alias: str) -> dict[str, tuple[Any, Callable[..., Any]]]:
    """The alias's (optimizer, apply_updates) of each side, at learning rate ``LR``."""
    theirs = getattr(optax.contrib if alias in IN_CONTRIB else optax, alias)
    return {
        "adamjax": (getattr(adamjax, alias)(LR), adamjax.apply_updates),
        "optax": (theirs(LR), optax.apply_updates),
    }


def side(
    name: str, optimizer: Any, apply: Callable[..., Any], params: Any, grads: Any
) -> Contender:
    """The timed contender of one side, with its state bytes per parameter."""
    state = optimizer.init(params)
    step = harness.optimizer_step(optimizer, apply)
    contender = harness.step_contender(name, step, (params, state), (grads,))
    contender.info["state_bytes_per_param"] = harness.nbytes(state) / np.size(params)
    return contender


def compile_seconds(
    sides: dict[str, tuple[Any, Callable[..., Any]]], params: Any, grads: Any, rounds: int
) -> dict[str, np.ndarray]:
    """Seconds of ``lower().compile()`` of a fresh jit of each side's step (a new function, so
    that it is traced again), the order alternating every round."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    states = {name: jax.eval_shape(opt.init, params) for name, (opt, _) in sides.items()}
    for r in range(rounds):
        for name in list(sides)[:: 1 if r % 2 == 0 else -1]:
            jitted = jax.jit(harness.optimizer_step(*sides[name]), donate_argnums=(0, 1))
            _, info = harness.compile_step(jitted, params, states[name], grads)
            samples[name].append(info["compile_s"])
    return {name: np.asarray(values) for name, values in samples.items()}


def run_alias(
    alias: str, shape: tuple[int, int], rounds: int, batch_s: float, compiles: int
) -> dict:
    """One row: both sides' step times, compile times and compiled facts."""
    params, grads = harness.random_trees(shape)
    sides = optimizers(alias)
    contenders: list[Contender] = [side(n, *sides[n], params, grads) for n in sides]
    steps = harness.interleaved(contenders, rounds, batch_s)
    abstract = jax.ShapeDtypeStruct(shape, np.float32)
    if compiles > 0:
        compiled = compile_seconds(sides, abstract, abstract, compiles)
    else:  # the contenders' own compiles, the adamjax side first
        compiled = {c.name: np.asarray([c.info["compile_s"]]) for c in contenders}
    row: dict[str, Any] = {"alias": alias, "shape": shape}
    for record in harness.records(contenders, steps):
        samples = compiled[record["contender"]]
        row[record["contender"]] = {**record, "compile_samples_s": samples,
                                    "compile_median_s": float(np.median(samples))}  # fmt: skip
    ours, theirs = row["adamjax"], row["optax"]
    row["step_ratio"] = ours["median_s"] / theirs["median_s"]
    row["compile_ratio"] = ours["compile_median_s"] / theirs["compile_median_s"]
    return row


COLUMNS = ("alias", "adamjax us", "optax us", "step ratio", "compile ratio", "compile s",
           "fusions", "state B/param", "moved B/param", "over target")  # fmt: skip


def format_row(row: dict[str, Any]) -> list[str]:
    """A table row; pairs read adamjax / optax."""
    ours, theirs = row["adamjax"], row["optax"]
    pair = lambda key, f: f"{f(ours.get(key, np.nan))} / {f(theirs.get(key, np.nan))}"  # noqa: E731
    n_params = row["shape"][0] * row["shape"][1]
    over = [name for name, ratio, target in (("step", row["step_ratio"], STEP_TARGET),
            ("compile", row["compile_ratio"], COMPILE_TARGET)) if ratio > target]  # fmt: skip
    return [
        row["alias"], harness.us(ours["median_s"]), harness.us(theirs["median_s"]),
        f"{row['step_ratio']:.2f}", f"{row['compile_ratio']:.2f}",
        pair("compile_median_s", lambda s: f"{s:.2f}"), pair("fusions", str),
        pair("state_bytes_per_param", lambda b: f"{b:.3g}"),
        pair("bytes_accessed", lambda b: f"{b / n_params:.0f}"), ", ".join(over),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "a 1000 x 1000 leaf, 3 short rounds, no compile rounds")
    parser.add_argument("--aliases", nargs="+", choices=ALIASES, default=list(ALIASES))
    parser.add_argument("--compiles", type=int, help="compile rounds (default 5, quick 0)")
    args = parser.parse_args(argv)
    shape = QUICK_SHAPE if args.quick else SHAPE
    compiles = args.compiles if args.compiles is not None else 0 if args.quick else 5
    setup = f"; optax {optax.__version__}; one {shape[0]} x {shape[1]} float32 leaf"
    rounds, batch_s = harness.start(args, (15, 100), (3, 5), f"{setup}; {compiles} compile rounds")
    rows = [run_alias(alias, shape, rounds, batch_s, compiles) for alias in args.aliases]
    print(harness.markdown(COLUMNS, [format_row(r) for r in rows]))
    print(f"\nratios and pairs: adamjax / optax; over target: a step ratio above {STEP_TARGET}, "
          f"a compile ratio above {COMPILE_TARGET}")  # fmt: skip
    env = {"jax": jax.__version__, "optax": optax.__version__, "load_after": harness.load_average()}
    harness.finish(args.json, {"environment": env, "rows": rows})


if __name__ == "__main__":
    main()
