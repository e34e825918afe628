"""Optimizer state and shardings: placement, abstract init, ZeRO-1, on one and on 8 devices.

The suite runs with 8 CPU devices (tests/conftest.py); the 8-device checks are the functions of
tests/sharded_checks.py, called here in the same process (that module also prints them, and the
memory table of docs/distributed.md, when run on its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import adamjax
from adamjax import presets
from tests import sharded_checks
from tests.typed import unchecked

# --- 8 simulated devices -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def placement() -> dict[str, Any]:
    return sharded_checks.check_placement()


@pytest.fixture(scope="module")
def layouts() -> dict[str, Any]:
    return sharded_checks.check_layouts()


def test_the_suite_runs_on_eight_devices_and_places_on_the_first() -> None:
    assert jax.device_count() == sharded_checks.DEVICES  # set in tests/conftest.py
    assert jnp.ones(3).sharding == SingleDeviceSharding(jax.devices()[0])


@pytest.mark.slow
def test_init_places_every_state_leaf_like_its_param(placement: dict[str, Any]) -> None:
    ways = ["eager", "jit_out_shardings", "jit_set_mesh"]
    for case, result in placement.items():
        for way in ways:
            if way in result:
                assert result[way] == [], (case, way)
    assert "explicit/adam" in placement and "auto/every_state_kind" in placement


@pytest.mark.slow
def test_jitted_step_keeps_the_placement(placement: dict[str, Any]) -> None:
    stepped = [case for case, r in placement.items() if "after_steps" in r]
    assert len(stepped) == 6 and "explicit/accumulated_adam" in stepped
    for case in stepped:
        assert placement[case]["after_steps"] == [], case
        assert placement[case]["params_after_steps"] == [], case


@pytest.mark.slow
def test_placement_compared_with_optax() -> None:
    """What docs/distributed.md reports about optax #548, as measured with optax installed."""
    seen = sharded_checks.compare_with_optax()
    mesh_count = "P()@4x2"
    # Eagerly, adamjax puts its counter with the params; optax leaves it on the default device.
    assert set(seen["adamjax/device3/eager"].values()) == {"device 3"}
    assert seen["optax/device3/eager"]["[0].count"] == "device 0"
    assert seen["adamjax/auto/eager"]["[0].count"] == mesh_count
    assert seen["optax/auto/eager"]["[0].count"] == "device 0"
    # Under jit on automatic axes the traced params carry no placement: both land on device 0
    # unless out_shardings says otherwise, and state_shardings fixes it for both.
    for lib in ("adamjax", "optax"):
        assert set(seen[f"{lib}/device3/jit"].values()) == {"device 0"}
        assert set(seen[f"{lib}/device3/jit_state_shardings"].values()) == {"device 3"}
        assert set(seen[f"{lib}/auto/jit"].values()) == {"device 0"}
        assert seen[f"{lib}/auto/jit_state_shardings"] == seen["adamjax/auto/eager"]
        assert seen[f"{lib}/explicit/jit_set_mesh"] == seen["adamjax/explicit/eager"]
        assert seen[f"{lib}/explicit/jit"].startswith("ValueError")
    assert seen["adamjax/auto/eager"]["[0].mu['w']"] == "P('data', 'model')@4x2"


@pytest.mark.parametrize(
    "layout",
    [
        "auto/data_parallel",
        "auto/model_parallel",
        "auto/zero1",
        "explicit/data_parallel",
        "explicit/model_parallel",
        "explicit/zero1",
        "shard_map/zero1",
    ],
)
@pytest.mark.slow
def test_layout_matches_single_device_and_reference(layouts: dict[str, Any], layout: str) -> None:
    result = layouts[layout]
    assert result["step_placement_errors"] == []
    assert result.get("init_placement_errors", []) == []
    # float64 throughout: only the order of the batch reduction differs.
    assert result["vs_single_device_params"] < 1e-12
    assert result["vs_single_device_moments"] < 1e-12
    assert result["vs_reference"] < 1e-12
    assert layouts["single_device"]["vs_reference"] < 1e-12


@pytest.mark.slow
def test_zero1_divides_the_state_memory_per_device(layouts: dict[str, Any]) -> None:
    n = layouts["parameters"]
    for kind in ("auto", "explicit"):
        full = layouts[f"{kind}/data_parallel"]["bytes_per_device"]
        zero1 = layouts[f"{kind}/zero1"]["bytes_per_device"]
        model = layouts[f"{kind}/model_parallel"]["bytes_per_device"]
        assert full["state"] == 2 * 8 * n + 4  # mu and nu in float64, an int32 counter
        assert zero1["state"] == 2 * 8 * n // 8 + 4
        assert zero1["state_after_steps"] == zero1["state"]
        assert zero1["params"] == full["params"] == 8 * n  # params stay replicated
        assert zero1["compiled_arguments"] < full["compiled_arguments"] - 0.8 * full["state"]
        assert model["state"] < 0.51 * full["state"]  # halved by the 2-way model axis
    assert layouts["shard_map/zero1"]["bytes_per_device"]["state_after_steps"] == 2 * n + 4


@pytest.mark.slow
def test_abstract_init_matches_init_without_allocating() -> None:
    abstract = sharded_checks.check_abstract()
    assert len(abstract) == 6
    for case, result in abstract.items():
        assert result == {"allocated_arrays": 0, "same_structure": True, "mismatches": []}, case


@pytest.mark.slow
def test_checkpoint_restores_a_sharded_state_sharded(tmp_path: Path) -> None:
    result = sharded_checks.check_checkpoint(str(tmp_path))
    assert result["live"] == [] and result["abstract"] == []
    # w, v and b of the params and of both moments are split across devices
    assert result["live_sharded_leaves"] == result["abstract_sharded_leaves"] == 9


# --- one device ---------------------------------------------------------------------------------


OPTIMIZERS = {
    "adam": lambda: adamjax.adam(1e-3),
    "adam_bf16": lambda: adamjax.adam(1e-3, mu_dtype=jnp.bfloat16),
    "amsgrad": lambda: adamjax.amsgrad(1e-3),
    "adagrad": lambda: adamjax.adagrad(1e-2, 0.1),
    "rmsprop": lambda: adamjax.rmsprop(1e-3),
    "sgd": lambda: adamjax.sgd(1e-2, 0.9),
    "schedule": lambda: adamjax.adam(adamjax.schedules.constant(1e-3)),
    "keras": lambda: presets.keras_adam(1e-3),
    "optax": lambda: optax.adamw(1e-3),
}


def _params() -> dict[str, Any]:
    return {"w": jnp.ones((3, 4)), "b": jnp.zeros(4, jnp.float32), "none": None}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_abstract_init_agrees_with_eval_shape(name: str) -> None:
    opt = OPTIMIZERS[name]()
    params = _params()
    abstract_params = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    abstract = adamjax.abstract_init(opt, abstract_params)
    real = opt.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(real)
    for a, r in zip(jax.tree.leaves(abstract), jax.tree.leaves(real), strict=True):
        assert (a.shape, a.dtype) == (r.shape, r.dtype)
        assert a.sharding is None  # the params said nothing about placement


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_shardings_of_committed_params(name: str) -> None:
    opt = OPTIMIZERS[name]()
    device = jax.devices()[0]
    params = jax.device_put(_params(), device)
    shardings = adamjax.state_shardings(opt, params)
    state = jax.jit(opt.init, out_shardings=shardings)(params)
    for leaf in jax.tree.leaves(state):
        assert leaf.sharding == SingleDeviceSharding(device)


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - {"optax"}))
def test_eager_init_commits_state_where_the_params_are(name: str) -> None:
    opt = OPTIMIZERS[name]()
    device = jax.devices()[0]
    state = opt.init(jax.device_put(_params(), device))
    for leaf in jax.tree.leaves(state):  # counters included
        assert leaf.committed and leaf.sharding == SingleDeviceSharding(device)
    loose = opt.init(_params())  # uncommitted params: JAX's default placement
    assert not any(leaf.committed for leaf in jax.tree.leaves(loose))


@pytest.mark.parametrize("library", ["adamjax", "optax"])
def test_state_shardings_place_partition_groups_like_eager_init(library: str) -> None:
    """A group's moments hold ``None`` (adamjax) or ``MaskedNode()`` (optax) where a param
    belongs to another group; the params it does hold take their params' shardings."""
    mesh = jax.make_mesh((8,), ("x",))
    rows, whole = NamedSharding(mesh, P("x", None)), NamedSharding(mesh, P())
    params = {"w": jax.device_put(jnp.ones((8, 4)), rows), "b": jax.device_put(jnp.ones(4), whole)}
    labels = {"w": "matrices", "b": "vectors"}
    if library == "adamjax":
        ours = {"matrices": adamjax.adam(1e-3), "vectors": adamjax.adamw(1e-3)}
        opt: Any = adamjax.partition(ours, labels)
        matrices_mu = lambda state: state.inner_states["matrices"][0].mu  # noqa: E731
    else:
        theirs = {"matrices": optax.adam(1e-3), "vectors": optax.adamw(1e-3)}
        opt = optax.partition(unchecked(theirs), labels)  # its keys are typed Hashable
        matrices_mu = lambda state: state.inner_states["matrices"].inner_state[0].mu  # noqa: E731
    shardings = adamjax.state_shardings(opt, params)
    assert matrices_mu(shardings)["w"] == rows
    jitted = jax.jit(opt.init, out_shardings=shardings)(params)
    eager = opt.init(params)
    assert matrices_mu(jitted)["w"].sharding.is_equivalent_to(rows, 2)
    for (path, e), j in zip(
        jax.tree_util.tree_leaves_with_path(eager), jax.tree.leaves(jitted), strict=True
    ):
        if library == "optax" and e.ndim == 0:
            continue  # optax's eager init leaves its counters on the default device
        assert e.sharding.is_equivalent_to(j.sharding, e.ndim), jax.tree_util.keystr(path)


def test_abstract_init_with_moment_shardings_and_mesh() -> None:
    mesh = jax.make_mesh((1,), ("data",))
    replicated = NamedSharding(mesh, P())
    params = unchecked(  # jax.ShapeDtypeStruct leaves, where the annotation says arrays
        {
            "w": jax.ShapeDtypeStruct((3, 8), jnp.float32, sharding=replicated),
            "b": jax.ShapeDtypeStruct((), jnp.float32, sharding=replicated),
        }
    )
    zero1 = adamjax.zero1_shardings(params, "data")
    assert zero1["w"] == NamedSharding(mesh, P(None, "data"))  # the larger dimension
    assert zero1["b"] == replicated  # a scalar has nothing to split
    state = adamjax.abstract_init(adamjax.adam(1e-3), params, moment_shardings=zero1)
    assert state[0].mu["w"].sharding == zero1["w"]
    assert state[0].nu["w"].sharding == zero1["w"]
    assert state[0].count.sharding == replicated


def test_zero1_shardings_keeps_existing_specs() -> None:
    mesh = jax.make_mesh((1, 1), ("data", "model"))
    params = {
        "a": jax.ShapeDtypeStruct((8, 6), jnp.float32, sharding=NamedSharding(mesh, P("model"))),
        "b": jax.ShapeDtypeStruct((4, 2), jnp.float32, sharding=NamedSharding(mesh, P("data"))),
        "c": np.zeros((2, 5, 5)),  # no sharding of its own: takes the mesh argument
    }
    out = adamjax.zero1_shardings(params, "data", mesh=mesh)
    assert out["a"].spec == P("model", "data")
    assert out["b"].spec == P("data", None)  # already split along data
    assert out["c"].spec == P(None, "data", None)  # first of the largest dimensions


def test_zero1_shardings_errors() -> None:
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match=r"params\['w'\] has no NamedSharding"):
        adamjax.zero1_shardings({"w": np.zeros(4)})
    with pytest.raises(ValueError, match="axis 'batch' is not an axis of the mesh"):
        adamjax.zero1_shardings({"w": np.zeros(4)}, "batch", mesh=mesh)


def test_state_shardings_errors() -> None:
    opt = adamjax.adam(1e-3)
    with pytest.raises(ValueError, match=r"params\['w'\] has no sharding"):
        adamjax.state_shardings(opt, unchecked({"w": jax.ShapeDtypeStruct((2,), jnp.float32)}))
    params = jax.device_put({"w": jnp.ones(2)}, jax.devices()[0])
    sharding = params["w"].sharding
    with pytest.raises(ValueError, match="moment_shardings has tree structure"):
        adamjax.state_shardings(opt, params, moment_shardings={"v": sharding})
    with pytest.raises(TypeError, match=r"moment_shardings\['w'\] must be a jax.sharding"):
        adamjax.state_shardings(opt, params, moment_shardings={"w": "replicated"})
