"""Training N make_moons MLPs at once, vmapped, against N sequential steps and optax.

One ensemble step advances the N members of the quickstart's MLP by one step and waits for its
loss; ``plain`` replaces Adam by ``p - lr * g`` (``adamjax.scale_by_learning_rate``).
docs/ensembles.md describes both tables.

    python -m benchmarks.ensemble [--quick] [--members 1 8 64 256] [--json PATH]
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

import adamjax
from benchmarks import harness
from examples._moons import init_mlp, load_moons, loss_fn

LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8
PLAIN, PLAIN_FLAT = "plain p - lr*g vmapped", "plain p - lr*g flat vmapped"
HP_OURS = "adamjax vmapped, per-member hp"
HP_OPTAX = "optax inject_hyperparams vmapped, per-member hp"


def train_step(optimizer: Any, apply: Any = adamjax.apply_updates, flat: bool = False) -> Any:
    """One member's ``(params, state, x, y) -> (params, state, loss)``."""
    flat_loss = lambda p, x, y: loss_fn(p.unravel(), x, y)  # noqa: E731
    return harness.optimizer_step(optimizer, apply, loss=flat_loss if flat else loss_fn)


def vmapped(name: str, step: Callable[..., Any], params: Any, state: Any, args: tuple) -> Any:
    """``jit(vmap(step))``, waiting for the loss; the arguments before x, y are per member."""
    in_axes = (0, 0) + (0,) * (len(args) - 2) + (None, None)
    wait = lambda out: out[2].block_until_ready()  # noqa: E731
    return harness.step_contender(name, jax.vmap(step, in_axes), (params, state), args, wait)


def sequential(name: str, step: Callable[..., Any], members: list, adam: Any, data: tuple) -> Any:
    """A single-member jitted step, called once per member."""
    boxes = [harness.fresh([p, adam.init(p)]) for p in members]
    compiled, info = harness.compile_step(jax.jit(step, donate_argnums=(0, 1)), *boxes[0], *data)

    def run(n: int) -> None:
        for _ in range(n):
            for box in boxes:
                box[:] = compiled(box[0], box[1], *data)[:2]
            jax.block_until_ready([box[0] for box in boxes])

    return harness.Contender(name, run, info)


def contenders(n: int, data: tuple[Any, ...]) -> list[harness.Contender]:
    keys = jax.random.split(jax.random.key(0), n)
    params = adamjax.ensemble.members(init_mlp, keys)
    flat = adamjax.ensemble.members(lambda key: adamjax.flat.ravel(init_mlp(key)), keys)
    rng = np.random.default_rng(n)
    hp = adamjax.ensemble.hyperparameters(
        adamjax.adam, n, learning_rate=rng.uniform(1e-3, 1e-1, n).astype(np.float32),
        b1=rng.uniform(0.8, 0.95, n).astype(np.float32),
        b2=rng.uniform(0.99, 0.999, n).astype(np.float32), eps=np.full(n, EPS, np.float32),
    )  # fmt: skip
    adam, ox = adamjax.adam(LR, B1, B2, EPS), optax.adam(LR, B1, B2, EPS)
    injected = optax.inject_hyperparams(optax.adam)
    optax_hp_state = jax.jit(jax.vmap(lambda p, h: injected(**h).init(p)))(params, hp)
    optax_hp = injected(learning_rate=LR, b1=B1, b2=B2, eps=EPS)  # update reads the state's

    def adam_hp_step(p: Any, s: Any, h: Any, x: jax.Array, y: jax.Array) -> Any:
        return train_step(adamjax.adam(**h))(p, s, x, y)

    init, plain = adamjax.ensemble.init, adamjax.scale_by_learning_rate(LR)  # p - lr * g
    return [
        vmapped("adamjax vmapped", train_step(adam), params, init(adam, params), data),
        vmapped(HP_OURS, adam_hp_step, params, init(adamjax.adam, params, hp), (hp, *data)),
        vmapped("optax vmapped", train_step(ox, optax.apply_updates), params,
                jax.jit(jax.vmap(ox.init))(params), data),
        vmapped(HP_OPTAX, train_step(optax_hp, optax.apply_updates), params, optax_hp_state, data),
        sequential("adamjax sequential", train_step(adam), adamjax.ensemble.unstack(params),
                   adam, data),
        vmapped(PLAIN, train_step(plain), params, plain.init(params), data),
        vmapped("adamjax flat vmapped", train_step(adam, flat=True), flat, init(adam, flat), data),
        vmapped(PLAIN_FLAT, train_step(plain, flat=True), flat, plain.init(flat), data),
    ]  # fmt: skip


def run_members(n: int, rounds: int, batch_seconds: float, data: tuple) -> list[dict[str, Any]]:
    found = contenders(n, data)
    return harness.records(found, harness.interleaved(found, rounds, batch_seconds), members=n)


def shares(rows: dict[str, dict[str, Any]], kind: str) -> list[str]:
    """The second table's cells for one N and one statistic (median, min or paired)."""
    key = "samples_s" if kind == "paired" else f"{kind}_s"
    t = {name: np.asarray(row[key]) for name, row in rows.items()}

    def share(ours: str, plain: str) -> str:
        return f"{np.median((t[ours] - t[plain]) / t[ours]):.1%}"

    def ratio(a: str, b: str) -> float:
        return float(np.median(t[a] / t[b]))

    return [
        share("adamjax vmapped", PLAIN), share("optax vmapped", PLAIN),
        share("adamjax flat vmapped", PLAIN_FLAT),
        f"{ratio('adamjax vmapped', 'optax vmapped'):.2f}", f"{ratio(HP_OURS, HP_OPTAX):.2f}",
        f"{ratio('adamjax sequential', 'adamjax vmapped'):.1f}x",
    ]  # fmt: skip


def report(rows: Sequence[dict[str, Any]]) -> str:
    us, medians = harness.us, {(r["members"], r["contender"]): r["median_s"] for r in rows}
    vs = lambda r, other: f"{r['median_s'] / medians[r['members'], other]:.2f}"  # noqa: E731
    first = harness.markdown(
        ("N", "contender", "median us / ensemble step", "p10-p90 us", "min us", "us / member",
         "vs optax vmapped", "vs adamjax vmapped", "compile s", "fusions"),
        [(r["members"], r["contender"], us(r["median_s"]), harness.spread(r), us(r["min_s"]),
          us(r["median_s"] / r["members"]), vs(r, "optax vmapped"), vs(r, "adamjax vmapped"),
          f"{r['compile_s']:.2f}", r["fusions"])
         for r in rows],
    )  # fmt: skip
    second = harness.markdown(
        ("N", "statistic", "optimizer share, adamjax", "optimizer share, optax",
         "optimizer share, adamjax flat", "adamjax / optax vmapped",
         "per-member hp: adamjax / optax inject", "sequential / vmapped"),
        [(n, kind, *shares({r["contender"]: r for r in rows if r["members"] == n}, kind))
         for n in dict.fromkeys(r["members"] for r in rows)
         for kind in ("median", "min", "paired")],
    )  # fmt: skip
    return f"{first}\n\n{second}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__, "N = 1, 8, 64; 5 rounds")
    parser.add_argument("--members", type=int, nargs="+", help="ensemble sizes")
    args = parser.parse_args(argv)
    rounds, batch_seconds = harness.start(args, (21, 50), (5, 10), f"; optax {optax.__version__}")
    members = args.members or ((1, 8, 64) if args.quick else (1, 8, 64, 256))
    x_train, _, y_train, _ = load_moons()
    rows = [r for n in members for r in run_members(n, rounds, batch_seconds, (x_train, y_train))]
    print(report(rows))
    harness.finish(args.json, {"rounds": rounds, "batch_seconds": batch_seconds, "rows": rows})


if __name__ == "__main__":
    main()
