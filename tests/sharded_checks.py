"""Sharding checks on 8 simulated CPU devices.

tests/test_sharding.py calls these checks in the suite's own process (tests/conftest.py starts
JAX with 8 CPU devices) and asserts on what they return. Run as a module, this prints them as one
JSON object on its last line, or the memory each device holds in each layout, as in
docs/distributed.md:

    python -m tests.sharded_checks
    python -m tests.sharded_checks --memory-table

What it measures:

* placement: where ``init`` puts every state leaf, eagerly and under ``jit``, on meshes with
  automatic and explicit axes, for adamjax's optimizers and for ``optax.adam``;
* steps: that a jitted step keeps the state where ``init`` put it;
* layouts: data-parallel, 2-D model-parallel, ZeRO-1 (``jit`` with shardings) and ZeRO-1
  written with ``shard_map``, each against the same training on one device and against the
  float64 NumPy reference, with the bytes each device holds;
* abstract: ``adamjax.abstract_init`` from ``jax.ShapeDtypeStruct`` params, without allocating.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding, Sharding
from jax.sharding import PartitionSpec as P

import adamjax
from tests import reference as ref
from tests.typed import unchecked

DEVICES = 8
STEPS = 5
LR, B1, B2, EPS, WD = 1e-2, 0.9, 0.999, 1e-8, 1e-3
SIZES = (32, 512, 256)  # x: (BATCH, 32) -> tanh(x @ w1 + b1) -> @ w2 + b2 -> (BATCH, 256)
BATCH = 64

Params = dict[str, Any]


def describe(sharding: Any) -> str:
    """A short, stable text for a sharding: ``P('data', None)@4x2`` or ``device 3``."""
    if isinstance(sharding, NamedSharding):
        axes = "x".join(str(n) for n in sharding.mesh.axis_sizes)
        return f"P{tuple(sharding.spec)}@{axes}"
    if isinstance(sharding, jax.sharding.SingleDeviceSharding):
        return f"device {next(iter(sharding.device_set)).id}"
    return type(sharding).__name__


def make_mesh(shape: tuple[int, ...], names: tuple[str, ...], kind: str) -> jax.sharding.Mesh:
    axis_type = AxisType.Explicit if kind == "explicit" else AxisType.Auto
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def placement_errors(state: Any, expected: dict[str, Any], scalar: Sharding) -> list[str]:
    """Every state leaf not placed as expected.

    A leaf whose path ends in a param's key must have that param's sharding; any other leaf
    (a step counter) must have ``scalar``. This is decided from paths, independently of how
    adamjax decides it.
    """
    errors = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        key = str(getattr(path[-1], "key", ""))
        want = expected.get(key, scalar)
        if leaf.sharding != want:
            where = jax.tree_util.keystr(path)
            errors.append(f"{where}: {describe(leaf.sharding)}, expected {describe(want)}")
    return errors


def optimizers() -> dict[str, Any]:
    """Optimizers whose states hold every kind of state adamjax has."""
    every_kind = adamjax.chain(  # MomentsState, MaxSecondMomentState, TraceState, ScheduleState
        adamjax.moments(B1, B2, mu_dtype=jnp.bfloat16),
        adamjax.bias_correction(),
        adamjax.max_second_moment(),
        adamjax.normalize(EPS),
        adamjax.trace(0.5),
        adamjax.scale_by_learning_rate(adamjax.schedules.cosine_decay(LR, 100)),
    )
    return {
        "adam": adamjax.adam(LR),
        "every_state_kind": every_kind,
        "adagrad": adamjax.adagrad(LR, 0.1),
        "adamax": adamjax.adamax(LR),
        # AccumulateState; its update runs the inner step under lax.cond
        "accumulated_adam": adamjax.accumulate_gradients(adamjax.adam(LR), 2),
    }


def placement_params(mesh: jax.sharding.Mesh | None) -> tuple[Params, dict[str, Any]]:
    """Params of mixed shapes and dtypes, sharded four ways on ``mesh`` (host values if None)."""
    specs = {"w": P("data", "model"), "b": P("model"), "v": P(None, "data"), "s": P()}
    rng = np.random.default_rng(0)
    values = {
        "w": rng.normal(size=(16, 8)),
        "b": rng.normal(size=(8,)),
        "v": rng.normal(size=(3, 4)).astype(np.float32),
        "s": np.asarray(0.5),
    }
    if mesh is None:
        return values, {}
    shardings = {k: NamedSharding(mesh, spec) for k, spec in specs.items()}
    return jax.device_put(values, shardings), shardings


def check_placement() -> dict[str, Any]:
    """Where init puts the state, and whether a jitted step keeps it there."""
    results: dict[str, Any] = {}
    for kind in ("auto", "explicit"):
        mesh = make_mesh((4, 2), ("data", "model"), kind)
        params, shardings = placement_params(mesh)
        scalar = NamedSharding(mesh, P())
        grads = jax.tree.map(lambda p: 0.1 * p + 1.0, params)
        for name, opt in optimizers().items():
            out: dict[str, Any] = {}
            out["eager"] = placement_errors(opt.init(params), shardings, scalar)
            out_shardings = adamjax.state_shardings(opt, params)
            state = jax.jit(opt.init, out_shardings=out_shardings)(params)
            out["jit_out_shardings"] = placement_errors(state, shardings, scalar)
            if kind == "explicit":  # JAX requires the mesh context for jit on explicit axes
                with jax.set_mesh(mesh):
                    state = jax.jit(opt.init)(params)
                out["jit_set_mesh"] = placement_errors(state, shardings, scalar)
            if name not in ("adam", "every_state_kind", "accumulated_adam"):
                results[f"{kind}/{name}"] = out
                continue

            def step(params: Params, state: Any, grads: Params, opt: Any = opt) -> Any:
                updates, state = opt.update(grads, state, params)
                return adamjax.apply_updates(params, updates), state

            jitted = jax.jit(step)
            new_params = params
            for _ in range(3):  # three, so that accumulate_gradients both waits and updates
                if kind == "explicit":
                    with jax.set_mesh(mesh):
                        new_params, state = jitted(new_params, state, grads)
                else:
                    new_params, state = jitted(new_params, state, grads)
            out["after_steps"] = placement_errors(state, shardings, scalar)
            out["params_after_steps"] = placement_errors(new_params, shardings, scalar)
            results[f"{kind}/{name}"] = out
    return results


def observe(state: Any) -> dict[str, str]:
    return {
        jax.tree_util.keystr(path): describe(leaf.sharding)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
    }


def compare_with_optax() -> dict[str, Any]:
    """Measured placement of ``adamjax.adam`` and ``optax.adam`` states, case by case.

    ``device3``: params committed to a device that is not the default one (optax #548).
    ``auto``/``explicit``: params sharded on a 4x2 mesh with automatic or explicit axes.
    """
    cases: dict[str, Any] = {"device3": jax.device_put(placement_params(None)[0], jax.devices()[3])}
    meshes = {}
    for kind in ("auto", "explicit"):
        meshes[kind] = make_mesh((4, 2), ("data", "model"), kind)
        cases[kind] = placement_params(meshes[kind])[0]
    out: dict[str, Any] = {}
    for lib, opt in (("adamjax", adamjax.adam(LR)), ("optax", optax.adam(LR))):
        for case, params in cases.items():
            out[f"{lib}/{case}/eager"] = observe(opt.init(params))
            try:
                out[f"{lib}/{case}/jit"] = observe(jax.jit(opt.init)(params))
            except ValueError as error:  # explicit axes: JAX asks for jax.set_mesh around jit
                out[f"{lib}/{case}/jit"] = f"ValueError: {str(error)[:72]}"
            if case in meshes:
                with jax.set_mesh(meshes[case]):
                    out[f"{lib}/{case}/jit_set_mesh"] = observe(jax.jit(opt.init)(params))
            out_shardings = adamjax.state_shardings(opt, params)
            state = jax.jit(opt.init, out_shardings=out_shardings)(params)
            out[f"{lib}/{case}/jit_state_shardings"] = observe(state)
    return out


# ---------------------------------------------------------------------------------------------
# Layouts: the same training, sharded three ways and on one device.


def init_mlp(seed: int = 0) -> Params:
    rng = np.random.default_rng(seed)
    d_in, d_hidden, d_out = SIZES
    return {
        "w1": rng.normal(size=(d_in, d_hidden)) / np.sqrt(d_in),
        "b1": np.zeros(d_hidden),
        "w2": rng.normal(size=(d_hidden, d_out)) / np.sqrt(d_hidden),
        "b2": np.zeros(d_out),
    }


def make_data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, BATCH, SIZES[0]))
    y = np.sin(x.sum(axis=-1, keepdims=True) + np.arange(SIZES[2]) / 10.0)
    return x, y


def loss_fn(params: Params, x: jax.Array, y: jax.Array, out_sharding: Any = None) -> jax.Array:
    """Mean squared error of a tanh MLP; ``out_sharding`` places the output on explicit meshes."""
    hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    out = jnp.matmul(hidden, params["w2"], out_sharding=out_sharding)
    return jnp.mean((out + params["b2"][None, :] - y) ** 2)


def make_step(optimizer: Any, out_sharding: Any = None) -> Callable[..., Any]:
    def step(params: Params, state: Any, x: jax.Array, y: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y, out_sharding)
        updates, state = optimizer.update(grads, state, params)
        return adamjax.apply_updates(params, updates), state, loss

    return step


def optimizer() -> Any:
    return adamjax.adamw(LR, B1, B2, EPS, weight_decay=WD)


def reference_run(params: Params, xs: np.ndarray, ys: np.ndarray) -> Params:
    """AdamW from tests/reference.py, fed the float64 gradients of its own iterates."""
    grad_fn = jax.jit(jax.grad(loss_fn))
    opts = {
        k: ref.AdamW(v, lr=LR, b1=B1, b2=B2, eps=EPS, weight_decay=WD) for k, v in params.items()
    }
    current = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for x, y in zip(xs, ys, strict=True):
        grads = grad_fn(current, x, y)
        current = {k: opts[k].step(current[k], np.asarray(grads[k])) for k in current}
    return current


def single_device_run(params: Params, xs: np.ndarray, ys: np.ndarray) -> tuple[Params, Any]:
    device = jax.devices()[0]
    opt = optimizer()
    p = jax.device_put(params, device)
    state = opt.init(p)
    step = jax.jit(make_step(opt))
    for x, y in zip(xs, ys, strict=True):
        p, state, _ = step(p, state, jax.device_put(x, device), jax.device_put(y, device))
    return p, state


def per_device_bytes(tree: Any) -> int:
    """The most bytes any one device holds of ``tree``."""
    totals: dict[int, int] = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            totals[shard.device.id] = totals.get(shard.device.id, 0) + shard.data.nbytes
    return max(totals.values())


def max_difference(a: Any, b: Any) -> float:
    diffs = jax.tree.map(lambda u, v: float(np.max(np.abs(np.asarray(u) - np.asarray(v)))), a, b)
    return max(jax.tree.leaves(diffs))


def moments_of(state: Any) -> Any:
    return {"mu": state[0].mu, "nu": state[0].nu}


def layout_shardings(layout: str, kind: str) -> tuple[Any, ...]:
    """(mesh, param shardings, moment shardings or None, batch sharding) of a layout."""
    if layout == "model_parallel":
        mesh = make_mesh((4, 2), ("data", "model"), kind)
        params = {
            "w1": NamedSharding(mesh, P(None, "model")),
            "b1": NamedSharding(mesh, P("model")),
            "w2": NamedSharding(mesh, P("model", None)),
            "b2": NamedSharding(mesh, P()),
        }
        return mesh, params, None, NamedSharding(mesh, P("data", None))
    mesh = make_mesh((DEVICES,), ("data",), kind)
    params = {k: NamedSharding(mesh, P()) for k in ("w1", "b1", "w2", "b2")}
    shapes = jax.tree.map(np.shape, init_mlp(), is_leaf=lambda v: isinstance(v, np.ndarray))
    abstract = {k: jax.ShapeDtypeStruct(shapes[k], jnp.float64, sharding=params[k]) for k in params}
    moments = adamjax.zero1_shardings(unchecked(abstract), "data") if layout == "zero1" else None
    return mesh, params, moments, NamedSharding(mesh, P("data", None))


def run_layout(layout: str, kind: str, params0: Params, xs: np.ndarray, ys: np.ndarray) -> Any:
    mesh, param_sh, moment_sh, batch_sh = layout_shardings(layout, kind)
    opt = optimizer()
    params = jax.device_put(params0, param_sh)
    state_sh = adamjax.state_shardings(opt, params, moment_shardings=moment_sh)
    state = jax.jit(opt.init, out_shardings=state_sh)(params)
    init_errors = placement_errors(state, moment_sh or param_sh, NamedSharding(mesh, P()))
    replicated = NamedSharding(mesh, P())
    out_sharding = NamedSharding(mesh, P("data", None)) if kind == "explicit" else None
    step = jax.jit(
        make_step(opt, out_sharding),
        in_shardings=(param_sh, state_sh, batch_sh, batch_sh),
        out_shardings=(param_sh, state_sh, replicated),
        donate_argnums=(0, 1),
    )
    x0, y0 = jax.device_put(xs[0], batch_sh), jax.device_put(ys[0], batch_sh)
    compiled = step.lower(params, state, x0, y0).compile()
    memory = compiled.memory_analysis()
    assert memory is not None, "no memory analysis on this backend"
    bytes_before = {"params": per_device_bytes(params), "state": per_device_bytes(state)}
    with jax.set_mesh(mesh):
        for x, y in zip(xs, ys, strict=True):
            batch = jax.device_put(x, batch_sh), jax.device_put(y, batch_sh)
            params, state, _ = compiled(params, state, *batch)
    return (
        params,
        state,
        {
            "init_placement_errors": init_errors,
            "step_placement_errors": placement_errors(
                state, moment_sh or param_sh, NamedSharding(mesh, P())
            ),
            "moment_specs": {k: describe(v) for k, v in (moment_sh or param_sh).items()},
            "bytes_per_device": {
                **bytes_before,
                "state_after_steps": per_device_bytes(state),
                "compiled_arguments": int(memory.argument_size_in_bytes),
                "compiled_outputs": int(memory.output_size_in_bytes),
                "compiled_temporaries": int(memory.temp_size_in_bytes),
                "compiled_aliased": int(memory.alias_size_in_bytes),
            },
        },
    )


def run_zero1_shard_map(params0: Params, xs: np.ndarray, ys: np.ndarray) -> Any:
    """ZeRO-1 written by hand with shard_map: reduce-scatter, local update, all-gather.

    Each device keeps one slice of every moment, receives the matching slice of the summed
    gradient (``psum_scatter``), runs ``optimizer.update`` on its slices only and all-gathers
    the new params. adamjax's update is elementwise per leaf, so it runs unchanged on slices.
    """
    mesh = make_mesh((DEVICES,), ("data",), "explicit")
    opt = optimizer()
    replicated = NamedSharding(mesh, P())
    param_sh = {k: replicated for k in ("w1", "b1", "w2", "b2")}
    moment_sh = adamjax.zero1_shardings(jax.device_put(params0, param_sh), "data")
    moment_specs = {k: s.spec for k, s in moment_sh.items()}
    dims = {k: tuple(spec).index("data") for k, spec in moment_specs.items()}
    state_sh = adamjax.state_shardings(
        opt, jax.device_put(params0, param_sh), moment_shardings=moment_sh
    )
    state_specs = jax.tree.map(lambda s: s.spec, state_sh)
    params = jax.device_put(params0, param_sh)
    state = jax.jit(opt.init, out_shardings=state_sh)(params)

    def local_step(params: Params, state: Any, x: jax.Array, y: jax.Array) -> Any:
        mine = jax.tree.map(lambda p: jax.lax.pcast(p, "data", to="varying"), params)
        grads = jax.grad(loss_fn)(mine, x, y)  # this device's gradient, not yet summed
        index = jax.lax.axis_index("data")

        def scatter(g: jax.Array, dim: int) -> jax.Array:
            total = jax.lax.psum_scatter(g, "data", scatter_dimension=dim, tiled=True)
            return total / DEVICES

        def take(p: jax.Array, dim: int) -> jax.Array:
            size = p.shape[dim] // DEVICES
            return jax.lax.dynamic_slice_in_dim(p, index * size, size, axis=dim)

        grad_slices = {k: scatter(g, dims[k]) for k, g in grads.items()}
        param_slices = {k: take(p, dims[k]) for k, p in params.items()}
        updates, state = opt.update(grad_slices, state, param_slices)
        new_slices = adamjax.apply_updates(param_slices, updates)
        gathered = {
            k: jax.lax.all_gather(v, "data", axis=dims[k], tiled=True, to="invarying")
            for k, v in new_slices.items()
        }
        return gathered, state

    step = jax.jit(
        jax.shard_map(
            local_step,
            mesh=mesh,
            in_specs=(P(), state_specs, P("data"), P("data")),
            out_specs=(P(), state_specs),
        ),
        donate_argnums=(0, 1),
    )
    batch_sh = NamedSharding(mesh, P("data", None))
    with jax.set_mesh(mesh):
        batch = jax.device_put(xs[0], batch_sh), jax.device_put(ys[0], batch_sh)
        compiled = step.lower(params, state, *batch).compile()
        for x, y in zip(xs, ys, strict=True):
            batch = jax.device_put(x, batch_sh), jax.device_put(y, batch_sh)
            params, state = compiled(params, state, *batch)
    memory = compiled.memory_analysis()
    assert memory is not None, "no memory analysis on this backend"
    return (
        params,
        state,
        {
            "step_placement_errors": placement_errors(state, moment_sh, replicated),
            "bytes_per_device": {
                "params": per_device_bytes(params),
                "state_after_steps": per_device_bytes(state),
                "compiled_arguments": int(memory.argument_size_in_bytes),
                "compiled_temporaries": int(memory.temp_size_in_bytes),
            },
        },
    )


def check_layouts() -> dict[str, Any]:
    params0 = init_mlp()
    xs, ys = make_data()
    single_params, single_state = single_device_run(params0, xs, ys)
    reference = reference_run(params0, xs, ys)
    out: dict[str, Any] = {
        "parameters": int(sum(np.size(v) for v in params0.values())),
        "single_device": {
            "vs_reference": max_difference(single_params, reference),
            "bytes_per_device": {
                "params": per_device_bytes(single_params),
                "state": per_device_bytes(single_state),
            },
        },
    }
    for kind in ("auto", "explicit"):
        for layout in ("data_parallel", "model_parallel", "zero1"):
            params, state, info = run_layout(layout, kind, params0, xs, ys)
            info["vs_single_device_params"] = max_difference(params, single_params)
            info["vs_single_device_moments"] = max_difference(
                moments_of(state), moments_of(single_state)
            )
            info["vs_reference"] = max_difference(params, reference)
            out[f"{kind}/{layout}"] = info
    params, state, info = run_zero1_shard_map(params0, xs, ys)
    info["vs_single_device_params"] = max_difference(params, single_params)
    info["vs_single_device_moments"] = max_difference(moments_of(state), moments_of(single_state))
    info["vs_reference"] = max_difference(params, reference)
    out["shard_map/zero1"] = info
    return out


def check_abstract() -> dict[str, Any]:
    """abstract_init from ShapeDtypeStructs agrees with a real init, and allocates nothing."""
    out: dict[str, Any] = {}
    mesh = make_mesh((DEVICES,), ("data",), "auto")
    param_sh = {k: NamedSharding(mesh, P()) for k in ("w1", "b1", "w2", "b2")}
    values = init_mlp()
    zero1 = adamjax.zero1_shardings(values, "data", mesh=mesh)
    abstract_params = {
        k: jax.ShapeDtypeStruct(np.shape(v), jnp.float32, sharding=param_sh[k])
        for k, v in values.items()
    }
    params = jax.device_put(jax.tree.map(lambda v: v.astype(np.float32), values), param_sh)
    for name, moment_sh in (("follow_params", None), ("zero1", zero1)):
        for opt_name, opt in optimizers().items():
            if opt_name not in ("adam", "every_state_kind", "adagrad"):
                continue
            before = jax.live_arrays()  # held, so that no id below is reused
            known = {id(array) for array in before}
            abstract = adamjax.abstract_init(
                opt, unchecked(abstract_params), moment_shardings=moment_sh
            )
            allocated = sum(id(array) not in known for array in jax.live_arrays())
            del before
            state_sh = adamjax.state_shardings(opt, params, moment_shardings=moment_sh)
            real = jax.jit(opt.init, out_shardings=state_sh)(params)
            mismatches = [
                jax.tree_util.keystr(path)
                for (path, a), r in zip(
                    jax.tree_util.tree_leaves_with_path(abstract),
                    jax.tree.leaves(real),
                    strict=True,
                )
                if (a.shape, a.dtype, a.sharding) != (r.shape, r.dtype, r.sharding)
            ]
            same_structure = jax.tree.structure(abstract) == jax.tree.structure(real)
            out[f"{name}/{opt_name}"] = {
                "allocated_arrays": allocated,
                "same_structure": same_structure,
                "mismatches": mismatches,
            }
    return out


def memory_table(layouts: dict[str, Any]) -> str:
    """The bytes per device of each layout, as a markdown table."""
    rows = [
        "| layout | params / device | optimizer state / device | step arguments / device "
        "| step temporaries / device | max diff vs 1 device |",
        "|---|---|---|---|---|---|",
    ]
    single = layouts["single_device"]["bytes_per_device"]
    rows.append(f"| one device | {single['params']:,} | {single['state']:,} | | | |")
    for name, info in layouts.items():
        if not isinstance(info, dict) or "vs_single_device_params" not in info:
            continue
        b = info["bytes_per_device"]
        state = b.get("state", b["state_after_steps"])
        rows.append(
            f"| {name} | {b['params']:,} | {state:,} | {b['compiled_arguments']:,} "
            f"| {b['compiled_temporaries']:,} | {info['vs_single_device_params']:.1e} |"
        )
    return "\n".join(rows)


def check_checkpoint(directory: str | None = None) -> dict[str, Any]:
    """A sharded state saved (in ``directory``, or a new temporary one) and restored onto a live
    or an abstract target keeps its sharding."""
    mesh = make_mesh((4, 2), ("data", "model"), "auto")
    params, _ = placement_params(mesh)
    opt = adamjax.adam(LR)
    state = jax.jit(opt.init, out_shardings=adamjax.state_shardings(opt, params))(params)
    tree = {"params": params, "opt_state": state}
    path = os.path.join(directory or tempfile.mkdtemp(), "sharded.npz")
    adamjax.save_checkpoint(path, tree)
    abstract = {
        "params": jax.tree.map(
            lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=p.sharding), params
        ),
        "opt_state": adamjax.abstract_init(opt, params),
    }
    out: dict[str, Any] = {}
    for name, target in (("live", tree), ("abstract", abstract)):
        restored = adamjax.restore_checkpoint(path, target)
        out[name] = [
            jax.tree_util.keystr(path)
            for (path, r), t in zip(
                jax.tree_util.tree_leaves_with_path(restored), jax.tree.leaves(tree), strict=True
            )
            if r.sharding != t.sharding or not np.array_equal(np.asarray(r), np.asarray(t))
        ]
        out[f"{name}_sharded_leaves"] = sum(
            len(r.sharding.device_set) > 1 and not r.sharding.is_fully_replicated
            for r in jax.tree.leaves(restored)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Sharding checks on 8 simulated CPU devices.")
    parser.add_argument(
        "--memory-table", action="store_true", help="run the layouts only, print bytes per device"
    )
    args = parser.parse_args()
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", DEVICES)  # before the first array is made
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    if jax.device_count() != DEVICES:
        raise SystemExit(f"expected {DEVICES} devices, got {jax.device_count()}")
    if args.memory_table:
        layouts = check_layouts()
        print(f"{layouts['parameters']:,} float64 parameters, {DEVICES} CPU devices")
        print(memory_table(layouts))
        return
    result = {
        "devices": jax.device_count(),
        "placement": check_placement(),
        "optax_comparison": compare_with_optax(),
        "layouts": check_layouts(),
        "abstract": check_abstract(),
        "checkpoint": check_checkpoint(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
