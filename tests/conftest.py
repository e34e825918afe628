"""Settings for the whole suite: float64 available, no implicit promotion, 8 CPU devices.

The device count is fixed when JAX's backend starts, so it is set here, before any test module
creates an array. Arrays and computations without a placement of their own go to device 0, as
on a machine with one device; tests/test_sharding.py places state across all eight.
"""

from collections.abc import Iterator

import chex
import jax
import pytest

DEVICES = 8

jax.config.update("jax_num_cpu_devices", DEVICES)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(autouse=True)
def _fresh_trace_counts() -> Iterator[None]:
    """``chex.assert_max_traces`` counts by where a function is defined: start each test at 0."""
    chex.clear_trace_counter()
    yield


@pytest.fixture
def standard_promotion() -> Iterator[None]:
    """optax relies on implicit dtype promotion, which the suite's strict mode rejects."""
    with jax.numpy_dtype_promotion("standard"):
        yield
