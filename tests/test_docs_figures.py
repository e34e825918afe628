"""The docs' diagram script draws every stage of the chain."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_moments_flow_diagram_draws_each_stage_with_its_arrow(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("moments_flow", ROOT / "docs/moments_flow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fig = module.draw()
    ax = fig.axes[0]
    assert len(ax.patches) == len(module.STAGES) == len(module.EDGES) + 1
    texts = [t.get_text() for t in ax.texts]
    for title, _, _ in module.STAGES:
        assert any(text.startswith(title) for text in texts)
    # the monitor sits between the estimator and the correction, as the docs say
    order = [title for title, _, _ in module.STAGES]
    assert order.index("moments(b1, b2)") < order.index("monitor(lr, eps)")
    assert order.index("monitor(lr, eps)") < order.index("bias_correction()")
    out = tmp_path / "flow.png"
    fig.savefig(out, dpi=40)
    assert out.stat().st_size > 1000
    assert (ROOT / "docs/moments_flow.png").exists()
