"""Every Python code block in the README and docs/ runs."""

from __future__ import annotations

import pathlib
import re

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


# pages whose blocks train with other libraries side by side (flax, equinox, orbax, optax) or
# time steps: they run with the slow tests (`pytest -m slow`, which CI runs)
SLOW_PAGES = ("docs/integrations/", "docs/migrating-from-optax.md", "docs/performance.md")


def _blocks() -> list:
    found = []
    for page in PAGES:
        name = str(page.relative_to(ROOT))
        marks = [pytest.mark.slow] if name.startswith(SLOW_PAGES) else []
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            found.append(pytest.param(match.group(1), id=f"{name}#{i}", marks=marks))
    return found


@pytest.mark.slow  # each block compiles its own programs: a minute in all
@pytest.mark.parametrize("code", _blocks())
def test_code_block_runs(code: str) -> None:
    # the docs are written for JAX's default settings, not the suite's strict ones
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})


def test_there_are_blocks_to_run() -> None:
    assert len(_blocks()) >= 1
