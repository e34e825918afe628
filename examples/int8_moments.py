"""Adam with 8-bit blockwise moments against float32 Adam, from the same start on the same batches.

Two tasks, each trained twice by ``adamjax.adam``: once with float32 moments, once with both
moments in ``adamjax.blockwise_int8()`` (the default format: blocks of 256 values along a
leaf's last axis, leaves of fewer than 4096 values kept in float32):

- **digits**: a 64-64-10 ReLU MLP on scikit-learn's 8x8 digits (75% train, 25% test),
  learning rate 1e-3, shuffled batches of 64, 40 epochs (3 with ``--quick``);
- **chars**: the one-layer character-level Transformer of ``examples/family.py`` on the source
  of Python's ``argparse`` module, learning rate 3e-3, batches of 16 windows of 33 characters
  from its first 90%, 2000 steps (100 with ``--quick``); the last 10% is held out.

For each task the script prints both runs' final training loss (the whole training set for
digits, 256 fixed training windows for chars), their relative difference, and their accuracy
(test accuracy for digits, next-character accuracy on 256 held-out windows for chars). It also
prints how far the 8-bit run's stored moments are from float32 moments fed the same gradients
(a float32 ``adamjax.moments()`` run alongside it): at each step, the median over the quantized
leaves' values of :math:`|m_8 - m| / |m|` and of :math:`|\\sqrt{v_8} - \\sqrt{v}| / \\sqrt{v}`
(values where the float32 moment is 0 left out), then the median and the largest of those over
the steps. The two loss curves of each task are saved to ``int8_moments.png`` in ``--out``
(default ``examples/out/``).

    .venv/bin/python examples/int8_moments.py            # the full run
    .venv/bin/python examples/int8_moments.py --quick    # 3 epochs and 100 steps
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from family import CHARS_BATCH, CONTEXT, init_transformer, load_text, next_character_loss
from family import transformer_logits as chars_logits
from matplotlib.figure import Figure
from tqdm import tqdm

import adamjax

OUT = Path(__file__).resolve().parent / "out"
Params = Any
B1, B2 = 0.9, 0.999
INT8 = adamjax.blockwise_int8()
HELD_OUT = 0.1  # the share of the text the chars task keeps for its accuracy
WINDOWS = 256  # windows of the chars task's final loss and of its accuracy


class Task(NamedTuple):
    """A model, its batches and how to score it."""

    name: str
    title: str
    params: Params
    loss: Callable[[Params, jax.Array], jax.Array]  # on one row of ``batches``
    batches: np.ndarray
    learning_rate: float
    final_loss: Callable[[Params], jax.Array]
    accuracy: Callable[[Params], jax.Array]


class Run(NamedTuple):
    """One training run: its batch losses, its scores and its moments' errors per step."""

    losses: np.ndarray
    final_loss: float
    accuracy: float
    m_error: np.ndarray  # empty for the float32 run
    v_error: np.ndarray


def mlp_logits(params: Params, x: jax.Array) -> jax.Array:
    """The 64-64-10 ReLU MLP."""
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of integer ``labels`` under ``logits`` (classes on the last axis)."""
    log_p = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[..., None], axis=-1))


def digits_task(epochs: int) -> Task:
    """The MLP on standardized digits, shuffled batches of 64, He-initialized."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    split = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_te, y_tr, y_te = (np.asarray(part) for part in split)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_train, x_test = (jnp.asarray((a - mean) / std, jnp.float32) for a in (x_tr, x_te))
    y_train, y_test = jnp.asarray(y_tr), jnp.asarray(y_te)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "w1": (2 / 64) ** 0.5 * jax.random.normal(k1, (64, 64), jnp.float32),
        "b1": jnp.zeros(64, jnp.float32),
        "w2": 0.125 * jax.random.normal(k2, (64, 10), jnp.float32),
        "b2": jnp.zeros(10, jnp.float32),
    }
    rng, per_epoch = np.random.default_rng(0), len(x_tr) // 64
    orders = [rng.permutation(len(x_tr))[: per_epoch * 64] for _ in range(epochs)]
    return Task(
        name="digits",
        title="digits, 64-64-10 MLP, batches of 64",
        params=params,
        loss=lambda p, batch: cross_entropy(mlp_logits(p, x_train[batch]), y_train[batch]),
        batches=np.concatenate(orders).reshape(-1, 64).astype(np.int32),
        learning_rate=1e-3,
        final_loss=lambda p: cross_entropy(mlp_logits(p, x_train), y_train),
        accuracy=lambda p: jnp.mean(jnp.argmax(mlp_logits(p, x_test), -1) == y_test),
    )


def windows(rng: np.random.Generator, start: int, stop: int, count: int) -> np.ndarray:
    """``count`` random offsets of windows of ``CONTEXT + 1`` characters in ``[start, stop)``."""
    return rng.integers(start, stop - CONTEXT - 1, size=count).astype(np.int32)


def chars_task(steps: int) -> Task:
    """The Transformer on the first 90% of the text; accuracy on windows of the last 10%."""
    text = load_text()
    vocab = sorted(set(text))
    codes = jnp.asarray(np.searchsorted(vocab, list(text)), jnp.int32)
    split = int(len(text) * (1 - HELD_OUT))
    rng, offsets = np.random.default_rng(0), jnp.arange(CONTEXT + 1)
    batches = windows(rng, 0, split, steps * CHARS_BATCH).reshape(steps, CHARS_BATCH)
    train_windows = codes[windows(rng, 0, split, WINDOWS)[:, None] + offsets]
    held_windows = codes[windows(rng, split, len(text), WINDOWS)[:, None] + offsets]

    def accuracy(params: Params) -> jax.Array:
        predicted = jnp.argmax(chars_logits(params, held_windows[:, :-1]), -1)
        return jnp.mean(predicted == held_windows[:, 1:])

    return Task(
        name="chars",
        title=f"argparse source, character Transformer, {len(vocab)} symbols",
        params=init_transformer(len(vocab)),
        loss=lambda p, batch: next_character_loss(p, codes[batch[:, None] + offsets]),
        batches=batches,
        learning_rate=3e-3,
        final_loss=lambda p: next_character_loss(p, train_windows),
        accuracy=accuracy,
    )


def median_relative_error(stored: Params, exact: Params, root: bool) -> jax.Array:
    """The median of ``|stored - exact| / |exact|`` over the quantized leaves' values where
    ``exact`` is not 0 (of their square roots when ``root``)."""
    quantized = [INT8.quantizes(jnp.shape(x)) for x in jax.tree.leaves(exact)]
    errors = []
    for keep, a, b in zip(quantized, jax.tree.leaves(stored), jax.tree.leaves(exact), strict=True):
        if keep:
            a, b = (jnp.sqrt(a), jnp.sqrt(b)) if root else (a, b)
            errors.append(jnp.where(b != 0, jnp.abs(a - b) / jnp.abs(b), jnp.nan).ravel())
    return jnp.nanmedian(jnp.concatenate(errors))


def make_step(task: Task, storage: Any) -> Callable[..., Any]:
    """The jitted training step: Adam with ``storage`` moments, and float32 moments of the
    same gradients next to it, whose distance to the stored ones it returns."""
    opt = adamjax.adam(task.learning_rate, B1, B2, mu_dtype=storage, nu_dtype=storage)
    shadow = adamjax.moments(B1, B2)

    @jax.jit
    def step(params: Params, state: Any, exact: Any, batch: jax.Array) -> tuple[Any, ...]:
        loss, grads = jax.value_and_grad(task.loss)(params, batch)
        updates, state = opt.update(grads, state, params)
        if storage is None:  # the float32 run: no moments to compare
            errors = jnp.zeros(2)
        else:
            _, exact = shadow.update(grads, exact)
            kept = adamjax.moments_from_state(
                state[0], B1, B2, corrected=False, mu_dtype=storage, nu_dtype=storage
            )
            m_error = median_relative_error(kept.mu, exact.mu, root=False)
            errors = jnp.stack([m_error, median_relative_error(kept.nu, exact.nu, root=True)])
        return adamjax.apply_updates(params, updates), state, exact, loss, errors

    return step


def train(task: Task, storage: Any) -> Run:
    """One pass over ``task.batches`` with ``storage`` moments (``None``: float32)."""
    step = make_step(task, storage)
    opt = adamjax.adam(task.learning_rate, B1, B2, mu_dtype=storage, nu_dtype=storage)
    # jitted inits: their states are committed to the device as the steps' are, so the step
    # compiles once
    params = task.params
    state, exact = jax.jit(opt.init)(params), jax.jit(adamjax.moments().init)(params)
    losses, errors = [], []
    label = f"{task.name}, {'8-bit' if storage is not None else 'float32'}"
    for batch in tqdm(task.batches, desc=label, leave=False, disable=not sys.stderr.isatty()):
        params, state, exact, loss, error = step(params, state, exact, jnp.asarray(batch))
        losses.append(float(loss))
        errors.append(np.asarray(error))
    error_array = np.asarray(errors) if storage is not None else np.zeros((0, 2))
    return Run(
        losses=np.asarray(losses),
        final_loss=float(jax.jit(task.final_loss)(params)),
        accuracy=float(jax.jit(task.accuracy)(params)),
        m_error=error_array[:, 0],
        v_error=error_array[:, 1],
    )


def report(task: Task, exact: Run, small: Run) -> None:
    """The task's lines: both runs' scores, the loss difference, the moments' errors."""
    accuracy_name = "test accuracy" if task.name == "digits" else "held-out next-char accuracy"
    print(f"{task.name}: {task.title}; {len(task.batches)} steps")
    for name, run in (("float32", exact), ("8-bit", small)):
        print(f"  {name:8s} final train loss {run.final_loss:.4f}  "
              f"{accuracy_name} {run.accuracy:.4f}")  # fmt: skip
    relative = (small.final_loss - exact.final_loss) / exact.final_loss
    print(f"  8-bit final loss differs by {relative:+.2%}; accuracy by "
          f"{100 * (small.accuracy - exact.accuracy):+.2f} points")  # fmt: skip
    for name, error in (("m", small.m_error), ("sqrt(v)", small.v_error)):
        print(f"  stored {name} relative error per step: median {np.median(error):.4f}, "
              f"max {np.max(error):.4f}")  # fmt: skip


def smoothed(losses: np.ndarray, window: int = 20) -> np.ndarray:
    """The running mean of the last ``window`` values (fewer at the start)."""
    sums = np.cumsum(np.insert(losses, 0, 0.0))
    counts = np.minimum(np.arange(1, len(losses) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(losses) + 1) - counts]) / counts


def plot(tasks: list[Task], results: dict[str, tuple[Run, Run]], out: Path) -> Path:
    """One panel per task: both runs' smoothed batch losses; written to a temporary file, then
    renamed over ``int8_moments.png``."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    for ax, task in zip(fig.subplots(1, len(tasks)), tasks, strict=True):
        runs = zip(("float32", "8-bit"), results[task.name], ("-", "--"), strict=True)
        for name, run, style in runs:
            ax.plot(np.arange(1, len(run.losses) + 1), smoothed(run.losses), style, label=name)
        ax.set(xlabel="step", ylabel="training loss (mean of 20 batches)", title=task.title)
        ax.set_yscale("log")
        ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    path, partial = out / "int8_moments.png", out / f".int8_moments.{os.getpid()}.png"
    fig.savefig(partial, dpi=100)
    os.replace(partial, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 epochs and 100 steps")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)
    tasks = [digits_task(3 if args.quick else 40), chars_task(100 if args.quick else 2000)]
    results = {}
    for task in tasks:
        results[task.name] = (train(task, None), train(task, INT8))
        report(task, *results[task.name])
    print(f"saved {plot(tasks, results, args.out)}")


if __name__ == "__main__":
    main()
