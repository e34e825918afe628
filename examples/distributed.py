"""Data-parallel training with adamjax across several processes, checked against one process.

One command launches everything on this machine:

    .venv/bin/python examples/distributed.py --processes 2            # 300 steps on make_moons
    .venv/bin/python examples/distributed.py --processes 2 --quick    # 30 steps, for a smoke test

The launcher picks a free port on 127.0.0.1 and starts one worker per process. Each worker
calls ``jax.distributed.initialize`` with the coordinator on 127.0.0.1 (bound to loopback only),
uses gloo for CPU collectives, and holds its own slice of the global batch. The params are
replicated, the optimizer state is placed with ``adamjax.state_shardings``, and XLA all-reduces
the gradients because the loss is a mean over the global batch. Beside the workers, the launcher
runs the same training in a single process and prints the largest difference between the two
results (with ``--out DIR``, it also saves that summary to ``DIR/distributed.json``). The
launcher itself never imports JAX, and stops every process it started on the way out, on
success, failure, Ctrl-C or SIGTERM.

On several hosts, run one worker per host with the coordinator's reachable address:

    .venv/bin/python examples/distributed.py --worker --coordinator 10.0.0.1:1234 \\
        --processes 2 --process-id 0      # on host 0; --process-id 1 on host 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

Params = dict[str, Any]
DESCRIPTION = "Data-parallel training with adamjax across several processes."
STEPS, QUICK_STEPS = 300, 30
SAMPLES, HIDDEN = 1024, 32


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=SAMPLES, noise=0.2, random_state=0)
    return np.asarray(x, dtype), np.asarray(y, dtype)


def init_params(dtype: str, seed: int = 0) -> Params:
    """A 2-32-1 tanh MLP, the same on every process (host NumPy, from a fixed seed)."""
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.normal(size=(2, HIDDEN)).astype(dtype),
        "b1": np.zeros(HIDDEN, dtype),
        "w2": (rng.normal(size=(HIDDEN, 1)) / np.sqrt(HIDDEN)).astype(dtype),
        "b2": np.zeros(1, dtype),
    }


def use_dtype(dtype: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")


def train(x_local: np.ndarray, y_local: np.ndarray, steps: int, lr: float) -> tuple[Params, float]:
    """Full-batch Adam on the global batch made of every process's rows; params and last loss.

    Works unchanged in one process (one device) and in many: the mesh spans
    ``jax.devices()``, which lists the devices of all processes.
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P
    from tqdm import trange

    import adamjax

    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Explicit,))
    replicated = NamedSharding(mesh, P())
    rows = NamedSharding(mesh, P("data"))
    host_params = init_params(str(x_local.dtype))
    params = {
        k: jax.make_array_from_callback(v.shape, replicated, lambda index, v=v: v[index])
        for k, v in host_params.items()
    }
    x = jax.make_array_from_process_local_data(rows, x_local)
    y = jax.make_array_from_process_local_data(rows, y_local)

    optimizer = adamjax.adam(lr)
    opt_state = jax.jit(optimizer.init, out_shardings=adamjax.state_shardings(optimizer, params))(
        params
    )

    def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
        hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
        z = (hidden @ params["w2"] + params["b2"][None, :])[:, 0]
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)  # binary cross-entropy on logits

    @jax.jit
    def step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return adamjax.apply_updates(params, updates), opt_state, loss

    loss = jnp.asarray(jnp.nan)
    with jax.set_mesh(mesh):
        show = jax.process_index() == 0 and sys.stderr.isatty()  # one bar, on a terminal only
        for _ in trange(steps, desc=f"{jax.process_count()} process(es)", disable=not show):
            params, opt_state, loss = step(params, opt_state, x, y)
            # Wait for each step: with several CPU devices per process, letting many steps
            # queue up behind gloo collectives stalled on jax 0.10.2.
            loss.block_until_ready()
    # The params are replicated: every process holds all of them.
    return {k: np.asarray(v.addressable_data(0)) for k, v in params.items()}, float(loss)


def worker(args: argparse.Namespace) -> None:
    """One process of the run (with ``--coordinator``), or the single-process reference."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", args.devices_per_process)
    use_dtype(args.dtype)
    if args.coordinator:
        port = args.coordinator.rsplit(":", 1)[1]
        bind = f"127.0.0.1:{port}" if args.coordinator.startswith("127.0.0.1:") else None
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.processes,
            process_id=args.process_id,
            coordinator_bind_address=bind,
            initialization_timeout=args.timeout,
        )
    x, y = load_data(args.dtype)
    rows = np.array_split(np.arange(len(x)), args.processes)[args.process_id]
    params, loss = train(x[rows], y[rows], args.steps, args.lr)
    if args.output:
        result = {
            "process_id": jax.process_index(),
            "processes": jax.process_count(),
            "devices": jax.device_count(),
            "final_loss": loss,
            "params": {k: v.tolist() for k, v in params.items()},
        }
        Path(args.output).write_text(json.dumps(result))
    else:
        print(f"process {jax.process_index()} of {jax.process_count()}: final loss {loss:.6f}")
    if args.coordinator:
        jax.distributed.shutdown()


def stop(processes: list[subprocess.Popen]) -> None:
    """Terminate the workers still running, then kill those that do not exit."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 3.0  # workers may treat SIGTERM as a preemption notice
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(args: argparse.Namespace) -> dict[str, Any]:
    """Run the workers on 127.0.0.1 and, beside them, the same training in one process.

    The launcher itself never imports JAX: it only starts, waits for and stops processes, so a
    SIGTERM or Ctrl-C always reaches the ``finally`` that stops them.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # the device count per process comes from --devices-per-process
    common = [f"--steps={args.steps}", f"--lr={args.lr}", f"--dtype={args.dtype}"]
    common += [f"--timeout={args.timeout}"]
    runs = {"single": ["--processes=1", "--devices-per-process=1"]}  # one process, one device
    for i in range(args.processes):
        runs[f"worker{i}"] = [
            f"--coordinator={coordinator}",
            f"--processes={args.processes}",
            f"--process-id={i}",
            f"--devices-per-process={args.devices_per_process}",
        ]
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory(prefix="adamjax-distributed-") as tmp:
        workdir = Path(tmp)
        procs: list[subprocess.Popen] = []
        try:
            for name, extra in runs.items():
                command = [sys.executable, os.path.abspath(__file__), "--worker", *extra, *common]
                command.append(f"--output={workdir / f'{name}.json'}")
                with open(workdir / f"{name}.log", "w") as log:
                    procs.append(
                        subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
                    )
            for name, proc in zip(runs, procs, strict=True):
                try:
                    code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise SystemExit(f"{name} did not finish within {args.timeout} s") from None
                if code != 0:
                    tail = (workdir / f"{name}.log").read_text()[-3000:]
                    raise SystemExit(f"{name} exited with code {code}:\n{tail}")
        finally:
            stop(procs)
        results = {name: json.loads((workdir / f"{name}.json").read_text()) for name in runs}

    single_result = results.pop("single")
    single = {k: np.asarray(v) for k, v in single_result["params"].items()}
    single_loss = single_result["final_loss"]
    first = results["worker0"]
    results = list(results.values())
    per_process = [{k: np.asarray(v) for k, v in r["params"].items()} for r in results]

    def largest(a: Params, b: Params) -> float:
        return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)

    return {
        "processes": first["processes"],
        "devices": first["devices"],
        "steps": args.steps,
        "dtype": args.dtype,
        "final_loss": first["final_loss"],
        "final_loss_single_process": single_loss,
        "max_abs_difference_vs_single_process": max(largest(p, single) for p in per_process),
        "max_abs_difference_between_processes": max(
            largest(p, per_process[0]) for p in per_process
        ),
    }


def save_summary(summary: dict[str, Any], out: Path) -> Path:
    """Write the summary to ``out/distributed.json``: a temporary file, then an atomic rename."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "distributed.json"
    with tempfile.NamedTemporaryFile("w", dir=out, suffix=".tmp", delete=False) as tmp:
        json.dump(summary, tmp, indent=2)
    os.replace(tmp.name, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--processes", type=int, default=2, help="number of worker processes")
    parser.add_argument("--devices-per-process", type=int, default=1)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps")
    parser.add_argument("--timeout", type=int, default=120, help="seconds before giving up")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--tolerance",
        type=float,
        help="largest accepted difference (default 1e-4 in float32, 1e-10 in float64)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--out", type=Path, help="also save the summary to DIR/distributed.json (default: no file)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--coordinator", help="host:port of process 0 (worker mode)")
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps = QUICK_STEPS
    if args.tolerance is None:
        args.tolerance = 1e-4 if args.dtype == "float32" else 1e-10
    if args.processes < 1 or args.devices_per_process < 1:
        parser.error("--processes and --devices-per-process must be at least 1")
    if SAMPLES % (args.processes * args.devices_per_process):
        parser.error(f"{SAMPLES} samples must split evenly over all devices")

    if args.worker:
        if args.processes > 1 and not args.coordinator:
            parser.error("--worker with --processes > 1 needs --coordinator host:port")
        worker(args)
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit("stopped by SIGTERM")  # unwinds through launch(), which stops workers

    signal.signal(signal.SIGTERM, on_sigterm)
    summary = launch(args)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{summary['processes']} processes, {summary['devices']} devices, "
            f"{summary['steps']} steps in {summary['dtype']}"
        )
        print(
            "max |params(distributed) - params(single process)| = "
            f"{summary['max_abs_difference_vs_single_process']:.3g}"
        )
        print(
            f"final loss {summary['final_loss']:.6f} "
            f"(single process {summary['final_loss_single_process']:.6f})"
        )
    if args.out is not None:  # with --json, stdout holds the JSON line only
        print(f"saved {save_summary(summary, args.out)}", file=sys.stderr if args.json else None)
    if summary["max_abs_difference_vs_single_process"] > args.tolerance:
        raise SystemExit(f"difference above the tolerance {args.tolerance}")


if __name__ == "__main__":
    main()
