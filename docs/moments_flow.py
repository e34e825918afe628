"""Draw the concepts page's diagram of how moments flow through Adam's chain.

python docs/moments_flow.py    # writes docs/moments_flow.png
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).resolve().parent / "moments_flow.png"

# (title, math shown under it, optional): one box per stage, top to bottom
STAGES = [
    ("gradients", r"$g_t$", False),
    (
        "moments(b1, b2)",
        r"$m_t = b_1 m_{t-1} + (1-b_1)\,g_t,\ \ v_t = b_2 v_{t-1} + (1-b_2)\,|g_t|^2$",
        False,
    ),
    ("monitor(lr, eps)", "records step sizes, signal-to-noise ratio, update RMS", True),
    ("bias_correction()", r"$\hat m_t = m_t / (1-b_1^t),\ \ \hat v_t = v_t / (1-b_2^t)$", False),
    (
        "normalize(eps, eps_root)",
        r"$u = \hat m_t / (\sqrt{\hat v_t + \epsilon_{root}} + \epsilon)$",
        False,
    ),
    ("add_decayed_weights(wd)", r"AdamW: $u + \lambda\,\theta$", True),
    ("scale_by_learning_rate(lr)", r"$-\alpha\, u$", False),
    ("apply_updates(params, updates)", r"$\theta \leftarrow \theta - \alpha\, u$", False),
]

# what travels along the arrow below each stage
EDGES = [
    "a tree like the params",
    "Moments(mu=m, nu=v, grad, b1, b2, count=t)",
    "the same Moments",
    "Moments(mu=m\u0302, nu=v\u0302, corrected=True)",
    "updates u: a tree like the params",
    "updates",
    "updates",
]


def draw() -> Figure:
    height, gap, width = 0.62, 0.55, 7.2
    fig = Figure(figsize=(8.2, 0.45 + len(STAGES) * (height + gap) * 0.62), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    top = len(STAGES) * (height + gap)
    for i, (title, math, optional) in enumerate(STAGES):
        y = top - i * (height + gap)
        moment_stage = 1 <= i <= 4
        box = FancyBboxPatch(
            (-width / 2, y - height),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor="#e8f0fb" if moment_stage else "#f4f4f4",
            edgecolor="#3b6ea8" if moment_stage else "#777777",
            linestyle="--" if optional else "-",
            linewidth=1.3,
        )
        ax.add_patch(box)
        label = title + ("   (optional)" if optional else "")
        ax.text(0, y - 0.2, label, ha="center", va="center", family="monospace", fontsize=10.5)
        ax.text(0, y - 0.46, math, ha="center", va="center", fontsize=9.5, color="#333333")
        if i < len(EDGES):
            start, end = y - height - 0.02, y - height - gap + 0.02
            ax.annotate(
                "",
                xy=(0, end),
                xytext=(0, start),
                arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2},
            )
            ax.text(0.12, (start + end) / 2, EDGES[i], va="center", fontsize=8.5, color="#3b6ea8")
    ax.set_xlim(-width / 2 - 0.1, width / 2 + 0.1)
    ax.set_ylim(top - len(STAGES) * (height + gap) + gap - 0.1, top + 0.1)
    return fig


if __name__ == "__main__":
    draw().savefig(OUT, dpi=110)
    print(f"wrote {OUT}")
