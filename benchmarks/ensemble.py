"""Benchmark: training N make_moons MLPs at once, vmapped, against N sequential steps and optax.

What is measured
----------------
The model is the quickstart's 2-10-1 MLP (41 parameters) on make_moons (700 training points,
full batch, float32). One *ensemble step* advances all N members by one step: loss and
gradients, optimizer update, ``apply_updates``. For N = 1, 8, 64, 256, side by side in one
process (interleaved, order rotating every round, with the harness of ``benchmarks.adam_step``):

* ``adamjax vmapped``: ``jit(vmap(step))`` with ``adamjax.adam(1e-2)``, params and state donated;
* ``adamjax vmapped, per-member hp``: the same with learning rate, b1, b2 and eps passed as
  arrays of shape (N,) and ``adamjax.adam(**hp)`` built inside the step;
* ``optax vmapped``: ``jit(vmap(step))`` with ``optax.adam(1e-2)``;
* ``optax inject_hyperparams vmapped, per-member hp``: optax's way to give each member its own
  hyperparameters (they live in the optimizer state);
* ``adamjax sequential``: one jitted, donated single-member step called N times;
* ``plain p - lr*g vmapped``: the vmapped step with the optimizer replaced by ``p - lr * g``
  (no state), to show what the optimizer costs;
* ``adamjax flat vmapped`` and ``plain p - lr*g flat vmapped``: the same two steps on flat
  params (``adamjax.flat.ravel`` per member, the model reading ``params.unravel()``), where the
  optimizer state is one buffer per moment instead of one per leaf.

The table gives the median time per ensemble step over the rounds with its p10-p90 spread, the
fastest round, the time per member, ratios, the compile time and the number of instructions in
the compiled program's entry computation (each fusion counts as one: a noise-free count of the
kernels a step launches). The optimizer's share of the vmapped step is
``(t_adam - t_plain) / t_adam``: from the medians, from the fastest rounds (on a shared
machine the fastest round is the least disturbed one), and ``paired``, the median over rounds
of the share within each round (the two steps run within milliseconds of each other, so slow
drifts of the machine cancel).

Usage::

    python -m benchmarks.ensemble [--quick] [--members 1 8 64 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adamjax
from benchmarks.adam_step import Contender, calibrate, measure
from examples._moons import init_mlp, load_moons, loss_fn

LR, B1, B2, EPS = 1e-2, 0.9, 0.999, 1e-8
Step = Callable[..., Any]


@dataclass(frozen=True)
class Settings:
    members: tuple[int, ...]
    rounds: int
    batch_seconds: float


QUICK = Settings(members=(1, 8, 64), rounds=5, batch_seconds=0.01)
FULL = Settings(members=(1, 8, 64, 256), rounds=21, batch_seconds=0.05)


def _train_step(update: Callable[[Any, Any, Any], tuple[Any, Any]]) -> Step:
    """One member's step: loss and grads, ``update(grads, state, params)``, apply."""

    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        new_params, state = update(grads, state, params)
        return new_params, state, loss

    return step


def _optimizer_update(
    optimizer: Any, apply: Callable[[Any, Any], Any]
) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    def update(grads: Any, state: Any, params: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return apply(params, updates), state

    return update


def _with_optimizer(optimizer: Any, apply: Callable[[Any, Any], Any]) -> Step:
    return _train_step(_optimizer_update(optimizer, apply))


def _plain_update(grads: Any, state: Any, params: Any) -> tuple[Any, Any]:
    return jax.tree.map(lambda p, g: p - LR * g, params, grads), state


def _flat_step(update: Callable[[Any, Any, Any], tuple[Any, Any]]) -> Step:
    """:func:`_train_step` on :class:`adamjax.flat.FlatParams`: the model reads the tree."""

    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any, jax.Array]:
        loss, grads = jax.value_and_grad(lambda p: loss_fn(p.unravel(), x, y))(params)
        new_params, state = update(grads, state, params)
        return new_params, state, loss

    return step


def _compile(fn: Any, *args: Any) -> tuple[Any, dict[str, float]]:
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    seconds = time.perf_counter() - start
    return compiled, {"compile_s": seconds, "entry_ops": float(_entry_ops(compiled.as_text()))}


def _entry_ops(hlo: str) -> int:
    """Instructions in the compiled program's entry computation (fusions count as one)."""
    entry = hlo[hlo.index("\nENTRY") :]
    body = entry[: entry.index("\n}")]
    return sum(" = " in line for line in body.splitlines()[1:])


def _copy(tree: Any) -> Any:
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


def vmapped_contender(
    name: str, step: Step, params: Any, state: Any, data: tuple[Any, ...], extra: Any = None
) -> Contender:
    """``jit(vmap(step))`` over params and state (and ``extra`` per-member arguments)."""
    if extra is None:
        jitted = jax.jit(jax.vmap(step, in_axes=(0, 0, None, None)), donate_argnums=(0, 1))
        args: tuple[Any, ...] = data
    else:
        jitted = jax.jit(
            jax.vmap(lambda p, s, e, x, y: step(p, s, e, x, y), in_axes=(0, 0, 0, None, None)),
            donate_argnums=(0, 1),
        )
        args = (extra, *data)
    box = [_copy(params), _copy(state)]
    compiled, info = _compile(jitted, *box, *args)

    def run(n: int) -> None:
        p, s = box
        for _ in range(n):
            p, s, loss = compiled(p, s, *args)
            loss.block_until_ready()  # as a loop that reads its loss; p, s wait at the end
        jax.block_until_ready((p, s))
        box[:] = [p, s]

    return Contender(name, run, info)


def sequential_contender(
    name: str, step: Step, members: list[Any], states: list[Any], data: tuple[Any, ...]
) -> Contender:
    """A single-member jitted step, called once per member."""
    jitted = jax.jit(step, donate_argnums=(0, 1))
    boxes = [[_copy(p), _copy(s)] for p, s in zip(members, states, strict=True)]
    compiled, info = _compile(jitted, *boxes[0], *data)

    def run(n: int) -> None:
        for _ in range(n):
            for box in boxes:
                p, s, _ = compiled(box[0], box[1], *data)
                box[:] = [p, s]
            jax.block_until_ready([box[0] for box in boxes])

    return Contender(name, run, info)


def build(n: int, data: tuple[Any, ...]) -> list[Contender]:
    keys = jax.random.split(jax.random.key(0), n)
    params = adamjax.ensemble.members(init_mlp, keys)
    rng = np.random.default_rng(n)
    hp = adamjax.ensemble.hyperparameters(
        adamjax.adam,
        n,
        learning_rate=rng.uniform(1e-3, 1e-1, n).astype(np.float32),
        b1=rng.uniform(0.8, 0.95, n).astype(np.float32),
        b2=rng.uniform(0.99, 0.999, n).astype(np.float32),
        eps=np.full(n, EPS, np.float32),
    )

    adam = adamjax.adam(LR, B1, B2, EPS)
    adam_step = _with_optimizer(adam, adamjax.apply_updates)

    def adam_hp_step(p: Any, s: Any, h: Any, x: jax.Array, y: jax.Array) -> Any:
        return _with_optimizer(adamjax.adam(**h), adamjax.apply_updates)(p, s, x, y)

    ox = optax.adam(LR, B1, B2, EPS)
    injected = optax.inject_hyperparams(optax.adam)

    def optax_hp_init(p: Any, h: Any) -> Any:
        return injected(
            learning_rate=h["learning_rate"], b1=h["b1"], b2=h["b2"], eps=h["eps"]
        ).init(p)

    optax_hp_state = jax.jit(jax.vmap(optax_hp_init))(params, hp)
    optax_hp = injected(learning_rate=LR, b1=B1, b2=B2, eps=EPS)  # update reads the state's
    members = adamjax.ensemble.unstack(params)
    flat = adamjax.ensemble.members(lambda key: adamjax.flat.ravel(init_mlp(key)), keys)
    return [
        vmapped_contender(
            "adamjax vmapped", adam_step, params, adamjax.ensemble.init(adam, params), data
        ),
        vmapped_contender(
            "adamjax vmapped, per-member hp",
            adam_hp_step,
            params,
            adamjax.ensemble.init(adamjax.adam, params, hp),
            data,
            extra=hp,
        ),
        vmapped_contender(
            "optax vmapped",
            _with_optimizer(ox, optax.apply_updates),
            params,
            jax.jit(jax.vmap(ox.init))(params),
            data,
        ),
        vmapped_contender(
            "optax inject_hyperparams vmapped, per-member hp",
            _with_optimizer(optax_hp, optax.apply_updates),
            params,
            optax_hp_state,
            data,
        ),
        sequential_contender(
            "adamjax sequential", adam_step, members, [adam.init(p) for p in members], data
        ),
        vmapped_contender("plain p - lr*g vmapped", _train_step(_plain_update), params, (), data),
        vmapped_contender(
            "adamjax flat vmapped",
            _flat_step(_optimizer_update(adam, adamjax.apply_updates)),
            flat,
            adamjax.ensemble.init(adam, flat),
            data,
        ),
        vmapped_contender("plain p - lr*g flat vmapped", _flat_step(_plain_update), flat, (), data),
    ]


def run_members(n: int, settings: Settings, data: tuple[Any, ...]) -> list[dict[str, Any]]:
    contenders = build(n, data)
    for c in contenders:
        calibrate(c, settings.batch_seconds)
    samples = measure(contenders, settings.rounds)
    rows = []
    for c in contenders:
        p10, median, p90 = np.percentile(samples[c.name], [10, 50, 90])
        row = {"members": n, "contender": c.name, "median_s": median, "p10_s": p10, "p90_s": p90}
        row["min_s"] = float(np.min(samples[c.name]))
        rows.append({**row, "batch": c.batch, "samples_s": samples[c.name], **c.info})
    medians = {r["contender"]: r["median_s"] for r in rows}
    for r in rows:
        r["vs_optax_vmapped"] = r["median_s"] / medians["optax vmapped"]
        r["vs_adamjax_vmapped"] = r["median_s"] / medians["adamjax vmapped"]
    return rows


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


def _times(row: dict[str, Any], kind: str) -> np.ndarray:
    """A row's median or fastest time, or (``paired``) its time in every round."""
    if kind == "paired":
        return np.asarray(row["samples_s"])
    return np.asarray(row["min_s"] if kind == "min" else row["median_s"])


def _ratio(rows: dict[str, dict[str, Any]], a: str, b: str, kind: str) -> float:
    """``t_a / t_b``; ``paired``: the median over rounds of the ratio within each round."""
    return float(np.median(_times(rows[a], kind) / _times(rows[b], kind)))


def _share(rows: dict[str, dict[str, Any]], ours: str, plain: str, kind: str) -> float:
    """The optimizer's share ``(t_ours - t_plain) / t_ours`` (paired: within each round)."""
    t_ours, t_plain = _times(rows[ours], kind), _times(rows[plain], kind)
    return float(np.median((t_ours - t_plain) / t_ours))


def report(rows: Sequence[dict[str, Any]]) -> str:
    columns = ("N", "contender", "median us / ensemble step", "p10-p90 us", "min us",
               "us / member", "vs optax vmapped", "vs adamjax vmapped", "compile s",
               "HLO entry ops")  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append(
            f"| {r['members']} | {r['contender']} | {_us(r['median_s'])} | "
            f"{_us(r['p10_s'])}-{_us(r['p90_s'])} | {_us(r['min_s'])} | "
            f"{_us(r['median_s'] / r['members'])} | "
            f"{r['vs_optax_vmapped']:.2f} | {r['vs_adamjax_vmapped']:.2f} | "
            f"{r['compile_s']:.2f} | {r['entry_ops']:.0f} |"
        )
    lines += [
        "",
        "| N | statistic | optimizer share, adamjax | optimizer share, optax | "
        "optimizer share, adamjax flat | adamjax / optax vmapped | "
        "per-member hp: adamjax / optax inject | sequential / vmapped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain, plain_flat = "plain p - lr*g vmapped", "plain p - lr*g flat vmapped"
    hp_ours = "adamjax vmapped, per-member hp"
    hp_theirs = "optax inject_hyperparams vmapped, per-member hp"
    for n in sorted({r["members"] for r in rows}):
        rows_n = {r["contender"]: r for r in rows if r["members"] == n}
        for kind in ("median", "min", "paired"):
            cells = [
                f"{_share(rows_n, 'adamjax vmapped', plain, kind):.1%}",
                f"{_share(rows_n, 'optax vmapped', plain, kind):.1%}",
                f"{_share(rows_n, 'adamjax flat vmapped', plain_flat, kind):.1%}",
                f"{_ratio(rows_n, 'adamjax vmapped', 'optax vmapped', kind):.2f}",
                f"{_ratio(rows_n, hp_ours, hp_theirs, kind):.2f}",
                f"{_ratio(rows_n, 'adamjax sequential', 'adamjax vmapped', kind):.1f}x",
            ]
            lines.append(f"| {n} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 8, 64; few rounds")
    parser.add_argument("--members", type=int, nargs="+", help="ensemble sizes")
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.members:
        settings = Settings(tuple(args.members), settings.rounds, settings.batch_seconds)
    x_train, _, y_train, _ = load_moons()
    data = (x_train, y_train)
    print(
        f"jax {jax.__version__} on {', '.join(str(d) for d in jax.devices())}; optax "
        f"{optax.__version__}; python {platform.python_version()}; load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )
    print(
        f"{settings.rounds} interleaved rounds, ~{settings.batch_seconds * 1e3:.0f} ms per batch; "
        "make_moons 2-10-1 MLP, 700 points, full batch, float32"
    )
    print()
    rows = [row for n in settings.members for row in run_members(n, settings, data)]
    print(report(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(settings), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
