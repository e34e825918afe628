"""The Adam family side by side on three small tasks, from the same start on the same data.

Each optimizer trains the same initial parameters on the same batches of three tasks:

- **moons**: the 2-10-1 MLP of ``examples/quickstart.py`` on make_moons, full batch;
- **digits**: the CNN of ``examples/digits_cnn.py`` on scikit-learn's 8x8 digits, batches of 32;
- **chars**: a one-layer character-level Transformer (4 heads, width 64, context 32) written
  in plain JAX, on the source of Python's ``argparse`` module (``inspect.getsource``), batches
  of 16 windows.

Learning rates follow one rule. Each task has a scale ``alpha`` (moons 1e-2, digits 1e-3,
chars 3e-3, Adam's usual rates for these models) and each optimizer a factor of it: 1 for
the Adam-like rules, 2 for adamax (its default 2e-3 against Adam's 1e-3), 2.5 for
schedule_free_adamw (its default 2.5e-3), 1/10 for lion (its sign update has a larger root
mean square, so the Lion paper takes a rate 3 to 10 times smaller), and 10 for lamb and
adafactor, whose steps are relative to each leaf's norm (lamb's trust ratio, adafactor's
``multiply_by_parameter_scale``). The full run tries that rate times 1/4, 1 and 4 and keeps
the one with the lowest final training loss; ``--quick`` takes the rate itself. Every other
argument is the alias's default, except ``min_dim_size_to_factor=32`` for adafactor so the
largest matrices of these small models are factored.

For each task and optimizer the script prints the final training loss (the whole training
set for moons and digits, a fixed set of 256 training windows for chars; schedule_free_adamw
evaluated at ``schedule_free_eval_params``), the first step at which the running mean of the
last 20 batch losses (the loss itself for moons) reaches the task's target, the median time
of a training step after compilation (the model's jitted gradient, shared by every optimizer,
then the optimizer's jitted update), and the optimizer state's bytes per parameter
(the ``nbytes`` of the state's arrays over the number of parameters). The loss curves are
saved to ``family.png`` in ``--out`` (default ``examples/out/``).

    .venv/bin/python examples/family.py            # every optimizer, 3 learning rates each
    .venv/bin/python examples/family.py --quick    # three optimizers, 30 steps, one rate each
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from _moons import init_mlp, load_moons
from _moons import loss_fn as moons_loss
from digits_cnn import init_cnn
from digits_cnn import load as load_digits
from digits_cnn import loss_fn as digits_loss
from matplotlib.figure import Figure
from tqdm import tqdm

import adamjax

OUT = Path(__file__).resolve().parent / "out"
Params = Any
Factory = Callable[[Any], adamjax.GradientTransformation]

BATCH = 32
CONTEXT = 32
WIDTH = 64
HEADS = 4
LAYERS = 1
CHARS_BATCH = 16
GRID = (0.25, 1.0, 4.0)  # multiples of each optimizer's rate tried by the full run
WINDOW = 20  # batch losses averaged for the target
STEPS = {"moons": 1000, "digits": 400, "chars": 400}  # the full run's
QUICK_STEPS = 30


def adafactor(learning_rate: Any) -> adamjax.GradientTransformation:
    """Adafactor that factors matrices with two axes of at least 32."""
    return adamjax.adafactor(learning_rate, min_dim_size_to_factor=32)


def cautious_adamw(learning_rate: Any) -> adamjax.GradientTransformation:
    """``cautious(adamw(learning_rate))``."""
    return adamjax.cautious(adamjax.adamw(learning_rate))


# name -> (the optimizer of a learning rate, its rate as a multiple of the task's scale)
FAMILY: dict[str, tuple[Factory, float]] = {
    "adam": (adamjax.adam, 1.0),
    "adamw": (adamjax.adamw, 1.0),
    "nadam": (adamjax.nadam, 1.0),
    "nadamw": (adamjax.nadamw, 1.0),
    "amsgrad": (adamjax.amsgrad, 1.0),
    "adamax": (adamjax.adamax, 2.0),
    "radam": (adamjax.radam, 1.0),
    "adabelief": (adamjax.adabelief, 1.0),
    "yogi": (adamjax.yogi, 1.0),
    "lion": (adamjax.lion, 0.1),
    "lamb": (adamjax.lamb, 10.0),
    "adan": (adamjax.adan, 1.0),
    "ademamix": (adamjax.ademamix, 1.0),
    "adopt": (adamjax.adopt, 1.0),
    "adafactor": (adafactor, 10.0),
    "schedule_free_adamw": (adamjax.schedule_free_adamw, 2.5),
    "stable_adamw": (adamjax.stable_adamw, 1.0),
    "adam_mini": (adamjax.adam_mini, 1.0),
    "adam_atan2": (adamjax.adam_atan2, 1.0),
    "cautious(adamw)": (cautious_adamw, 1.0),
}
QUICK = ("adam", "adafactor", "adam_mini")


class Task(NamedTuple):
    """A model, its data and how to score it.

    ``gradient(params, batch)`` is ``(loss, gradient)`` on one batch (a row of ``batches``),
    jitted once and shared by every optimizer; ``final_loss(params)`` the loss the table
    reports.
    """

    name: str
    title: str
    params: Params
    gradient: Callable[[Params, jax.Array], tuple[jax.Array, Params]]
    final_loss: Callable[[Params], jax.Array]
    batches: np.ndarray
    scale: float
    target: float


class Run(NamedTuple):
    """One optimizer on one task at one learning rate."""

    learning_rate: float
    losses: np.ndarray
    final_loss: float
    seconds_per_step: float
    state_bytes_per_param: float


def moons_task(steps: int) -> Task:
    """The quickstart MLP, full batch: every row of ``batches`` is unused."""
    x_train, _, y_train, _ = load_moons()

    def loss(params: Params, batch: jax.Array) -> jax.Array:
        del batch
        return moons_loss(params, x_train, y_train)

    return Task(
        name="moons",
        title="make_moons, 2-10-1 MLP, full batch",
        params=init_mlp(jax.random.key(42)),
        gradient=jax.jit(jax.value_and_grad(loss)),
        final_loss=jax.jit(lambda params: moons_loss(params, x_train, y_train)),
        batches=np.zeros((steps, 1), np.int32),
        scale=1e-2,
        target=0.12,
    )


def digits_task(steps: int) -> Task:
    """The digits CNN on shuffled batches of 32 training images, the same for everyone."""
    x_np, _, y_np, _ = load_digits()
    x_train, y_train = jnp.asarray(x_np), jnp.asarray(y_np)
    rng = np.random.default_rng(0)
    n_batches = len(x_np) // BATCH
    epochs = -(-steps // n_batches)
    orders = [rng.permutation(len(x_np))[: n_batches * BATCH] for _ in range(epochs)]
    batches = np.concatenate(orders).reshape(-1, BATCH)[:steps].astype(np.int32)

    def loss(params: Params, batch: jax.Array) -> jax.Array:
        return digits_loss(params, x_train[batch], y_train[batch])

    return Task(
        name="digits",
        title="digits, CNN, batches of 32",
        params=init_cnn(0),
        gradient=jax.jit(jax.value_and_grad(loss)),
        final_loss=jax.jit(lambda params: digits_loss(params, x_train, y_train)),
        batches=batches,
        scale=1e-3,
        target=0.1,
    )


def load_text() -> str:
    """The source of the standard library's ``argparse``: about 100,000 characters."""
    return inspect.getsource(argparse)


def dense(rng: np.random.Generator, fan_in: int, fan_out: int) -> jax.Array:
    """A float32 matrix with entries of variance ``1 / fan_in``."""
    return jnp.asarray(rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in), jnp.float32)


def init_transformer(vocab: int, seed: int = 0) -> Params:
    """Embeddings of scale 0.1, ``1 / sqrt(fan_in)`` matrices, unit layer-norm gains."""
    rng = np.random.default_rng(seed)

    def block() -> dict[str, jax.Array]:
        return {
            "norm1": jnp.ones(WIDTH),
            "qkv": dense(rng, WIDTH, 3 * WIDTH),
            "proj": dense(rng, WIDTH, WIDTH),
            "norm2": jnp.ones(WIDTH),
            "mlp_in": dense(rng, WIDTH, 4 * WIDTH),
            "mlp_in_b": jnp.zeros(4 * WIDTH),
            "mlp_out": dense(rng, 4 * WIDTH, WIDTH),
            "mlp_out_b": jnp.zeros(WIDTH),
        }

    return {
        "embed": jnp.asarray(0.1 * rng.normal(size=(vocab, WIDTH)), jnp.float32),
        "position": jnp.asarray(0.1 * rng.normal(size=(CONTEXT, WIDTH)), jnp.float32),
        "blocks": [block() for _ in range(LAYERS)],
        "norm": jnp.ones(WIDTH),
        "unembed": dense(rng, WIDTH, vocab),
        "unembed_b": jnp.zeros(vocab),
    }


def layer_norm(x: jax.Array, gain: jax.Array) -> jax.Array:
    """``gain * (x - mean) / sqrt(var + 1e-5)`` over the last axis."""
    centred = x - jnp.mean(x, axis=-1, keepdims=True)
    return gain * centred * jax.lax.rsqrt(jnp.mean(centred**2, axis=-1, keepdims=True) + 1e-5)


def causal_attention(block: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """Multi-head self-attention in which position ``i`` sees positions ``<= i``."""
    b, t, d = x.shape
    q, k, v = (
        part.reshape(b, t, HEADS, d // HEADS) for part in jnp.split(x @ block["qkv"], 3, axis=-1)
    )
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // HEADS)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -jnp.inf)
    mixed = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return mixed.reshape(b, t, d) @ block["proj"]


def transformer_logits(params: Params, tokens: jax.Array) -> jax.Array:
    """Next-character logits at every position of ``tokens`` (batch, time)."""
    x = params["embed"][tokens] + params["position"][: tokens.shape[1]]
    for block in params["blocks"]:
        x = x + causal_attention(block, layer_norm(x, block["norm1"]))
        hidden = jax.nn.gelu(layer_norm(x, block["norm2"]) @ block["mlp_in"] + block["mlp_in_b"])
        x = x + hidden @ block["mlp_out"] + block["mlp_out_b"]
    return layer_norm(x, params["norm"]) @ params["unembed"] + params["unembed_b"]


def next_character_loss(params: Params, windows: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats per character) of each character given those before it."""
    log_p = jax.nn.log_softmax(transformer_logits(params, windows[:, :-1]))
    return -jnp.mean(jnp.take_along_axis(log_p, windows[:, 1:, None], axis=-1))


def chars_task(steps: int) -> Task:
    """The Transformer on random windows of ``CONTEXT + 1`` characters of :func:`load_text`."""
    text = load_text()
    vocab = sorted(set(text))
    codes = jnp.asarray(np.searchsorted(vocab, list(text)), jnp.int32)
    rng = np.random.default_rng(0)
    offsets = np.arange(CONTEXT + 1)
    batches = rng.integers(0, len(text) - CONTEXT - 1, size=(steps, CHARS_BATCH)).astype(np.int32)
    held = jnp.asarray(rng.integers(0, len(text) - CONTEXT - 1, size=256)[:, None] + offsets)

    def loss(params: Params, batch: jax.Array) -> jax.Array:
        return next_character_loss(params, codes[batch[:, None] + offsets])

    return Task(
        name="chars",
        title=f"argparse source, character Transformer, {len(vocab)} symbols",
        params=init_transformer(len(vocab)),
        gradient=jax.jit(jax.value_and_grad(loss)),
        final_loss=jax.jit(lambda params: next_character_loss(params, codes[held])),
        batches=batches,
        scale=3e-3,
        target=2.0,
    )


def count_params(params: Params) -> int:
    """The number of scalars in ``params``."""
    return sum(leaf.size for leaf in jax.tree.leaves(params))


def state_bytes(state: Any) -> int:
    """The ``nbytes`` of every array in ``state``."""
    leaves = jax.tree.leaves(state)
    return sum(leaf.nbytes for leaf in leaves if isinstance(leaf, jax.Array | np.ndarray))


def make_update(factory: Factory) -> Callable[..., tuple[Params, Any]]:
    """The optimizer's jitted step from the gradients.

    The learning rate is an argument, so the rates of the grid share one compilation; the
    model's gradient is compiled once per task (``Task.gradient``) and shared by everyone.
    """

    @jax.jit
    def update(
        params: Params, state: Any, grads: Params, learning_rate: jax.Array
    ) -> tuple[Params, Any]:
        updates, state = factory(learning_rate).update(grads, state, params)
        return adamjax.apply_updates(params, updates), state

    return update


def evaluation_params(name: str, params: Params, state: Any) -> Params:
    """Where a model is scored: schedule-free's average, everyone else's params."""
    if name == "schedule_free_adamw":
        return adamjax.schedule_free_eval_params(state, params)
    return params


def train(task: Task, name: str, update: Callable[..., Any], learning_rate: float) -> Run:
    """One pass over ``task.batches``, timing each step once it has compiled."""
    factory = FAMILY[name][0]
    params = task.params
    state = factory(learning_rate).init(params)
    bytes_per_param = state_bytes(state) / count_params(params)
    rate = jnp.float32(learning_rate)
    losses, seconds = [], []
    for batch in task.batches:
        start = time.perf_counter()
        loss, grads = task.gradient(params, batch)
        params, state = jax.block_until_ready(update(params, state, grads, rate))
        seconds.append(time.perf_counter() - start)
        losses.append(float(loss))
    final = float(task.final_loss(evaluation_params(name, params, state)))
    return Run(
        learning_rate=learning_rate,
        losses=np.asarray(losses),
        final_loss=final if np.isfinite(final) else float("inf"),
        seconds_per_step=float(np.median(seconds[1:])),
        state_bytes_per_param=bytes_per_param,
    )


def best_run(task: Task, name: str, multiples: tuple[float, ...]) -> Run:
    """The run with the lowest final loss over the rates ``multiples`` of the optimizer's."""
    update = make_update(FAMILY[name][0])
    base = task.scale * FAMILY[name][1]
    runs = [train(task, name, update, base * multiple) for multiple in multiples]
    return min(runs, key=lambda run: run.final_loss)


def smoothed(losses: np.ndarray, window: int) -> np.ndarray:
    """The mean of the last ``window`` losses at each step (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], losses]))
    ends = np.arange(1, len(losses) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def window_of(task: Task) -> int:
    """Batch losses averaged for the target: one for full-batch moons."""
    return 1 if task.name == "moons" else WINDOW


def steps_to_target(task: Task, run: Run) -> int | None:
    """The first step (from 1) whose smoothed loss is at most the target, or None."""
    reached = np.flatnonzero(smoothed(run.losses, window_of(task)) <= task.target)
    return int(reached[0]) + 1 if reached.size else None


def print_table(task: Task, runs: dict[str, Run]) -> None:
    """A Markdown table, one row per optimizer."""
    initial = float(task.final_loss(task.params))
    print(f"\n{task.name}: {task.title}; {count_params(task.params)} params")
    print(f"{len(task.batches)} steps; initial loss {initial:.4f}; target loss {task.target}")
    print("\n| optimizer | lr | final loss | steps to target | step (ms) | state bytes/param |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, run in runs.items():
        reached = steps_to_target(task, run)
        print(
            f"| {name} | {run.learning_rate:.3g} | {run.final_loss:.4f} | "
            f"{reached if reached is not None else '-'} | {1e3 * run.seconds_per_step:.3f} | "
            f"{run.state_bytes_per_param:.2f} |"
        )


def plot(tasks: list[Task], results: dict[str, dict[str, Run]], out: Path) -> Path:
    """One panel per task: every optimizer's smoothed batch loss against steps."""
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    axes = fig.subplots(1, len(tasks))
    palette = [f"C{i}" for i in range(10)]
    for ax, task in zip(np.atleast_1d(axes), tasks, strict=True):
        for i, (name, run) in enumerate(results[task.name].items()):
            curve = smoothed(run.losses, window_of(task))
            style = "-" if i < 10 else "--"
            steps = np.arange(1, len(curve) + 1)
            ax.plot(steps, curve, style, color=palette[i % 10], lw=1.0, label=name)
        ax.axhline(task.target, color="black", lw=0.8, ls=":")
        ax.set(xlabel="step", ylabel="training loss", yscale="log", title=task.title)
    np.atleast_1d(axes)[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "family.png"
    fig.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="three optimizers, 30 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    names = QUICK if args.quick else tuple(FAMILY)
    multiples = (1.0,) if args.quick else GRID
    steps = dict.fromkeys(STEPS, QUICK_STEPS) if args.quick else STEPS
    tasks = [moons_task(steps["moons"]), digits_task(steps["digits"]), chars_task(steps["chars"])]
    results: dict[str, dict[str, Run]] = {}
    for task in tasks:
        runs = results.setdefault(task.name, {})
        load_before = os.getloadavg()[0]
        progress = tqdm(names, desc=task.name, leave=False, disable=not sys.stderr.isatty())
        for name in progress:
            runs[name] = best_run(task, name, multiples)
        print_table(task, runs)
        print(f"\nload average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"\nsaved {plot(tasks, results, args.out)}")


if __name__ == "__main__":
    main()
