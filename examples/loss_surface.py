"""Adam, normalized gradients and gradient descent on a loss surface with a long shallow valley.

The surface is ``1 - exp(-2 phi1^2) * exp(-(phi0 - 0.7)^2 / 8)``: steep across phi1, shallow
along phi0, minimum at (0.7, 0). From (-0.7, -0.9), for 80 steps:

* gradient descent (``adamjax.sgd``) falls into the valley at once but crawls along it;
* normalized gradients (``adamjax.normalized_gradient``, Adam with no averaging) move every
  coordinate by the learning rate and so make fast progress along the valley, but never settle:
  they bounce around the minimum;
* Adam (``adamjax.adam``) averages both moments and converges.

The surface is drawn in a colormap of 256 colours from dark brown to pale yellow
(``COLORMAP_HEX``).

    .venv/bin/python examples/loss_surface.py            # 80 steps each
    .venv/bin/python examples/loss_surface.py --quick    # the same (it takes milliseconds)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

import adamjax

OUT = Path(__file__).resolve().parent / "out"
START = (-0.7, -0.9)

# The surface's colormap: 256 hex colours from dark brown (low loss) to pale yellow.
COLORMAP_HEX = (
    "2a0902 2b0a03 2c0b04 2d0c05 2e0c06 2f0d07 300d08 310e09 320f0a 330f0b 34100b 35110c "
    "36110d 37120e 38120f 39130f 3a1410 3b1411 3c1511 3d1612 3e1613 3f1713 401714 411814 "
    "421915 431915 451a16 461b16 471b17 481c17 491d18 4a1d18 4b1e19 4c1f19 4d1f1a 4e201b "
    "50211b 51211c 52221c 53231d 54231d 55241e 56251e 57261f 58261f 592720 5b2821 5c2821 "
    "5d2922 5e2a22 5f2b23 602b23 612c24 622d25 632e25 652e26 662f26 673027 683027 693128 "
    "6a3229 6b3329 6c342a 6d342a 6f352b 70362c 71372c 72372d 73382e 74392e 753a2f 763a2f "
    "773b30 783c31 7a3d31 7b3e32 7c3e33 7d3f33 7e4034 7f4134 804235 814236 824336 834437 "
    "854538 864638 874739 88473a 89483a 8a493b 8b4a3c 8c4b3c 8d4c3d 8e4c3e 8f4d3f 904e3f "
    "924f40 935041 945141 955242 965343 975343 985444 995545 9a5646 9b5746 9c5847 9d5948 "
    "9e5a49 9f5a49 a05b4a a15c4b a35d4b a45e4c a55f4d a6604e a7614e a8624f a96350 aa6451 "
    "ab6552 ac6552 ad6653 ae6754 af6855 b06955 b16a56 b26b57 b36c58 b46d59 b56e59 b66f5a "
    "b7705b b8715c b9725d ba735d bb745e bc755f bd7660 be7761 bf7862 c07962 c17a63 c27b64 "
    "c27c65 c37d66 c47e67 c57f68 c68068 c78169 c8826a c9836b ca846c cb856d cc866e cd876f "
    "ce886f ce8970 cf8a71 d08b72 d18c73 d28d74 d38e75 d48f76 d59077 d59178 d69279 d7937a "
    "d8957b d9967b da977c da987d db997e dc9a7f dd9b80 de9c81 de9d82 df9e83 e09f84 e1a185 "
    "e2a286 e2a387 e3a488 e4a589 e5a68a e5a78b e6a88c e7aa8d e7ab8e e8ac8f e9ad90 eaae91 "
    "eaaf92 ebb093 ecb295 ecb396 edb497 eeb598 eeb699 efb79a efb99b f0ba9c f1bb9d f1bc9e "
    "f2bd9f f2bfa1 f3c0a2 f3c1a3 f4c2a4 f5c3a5 f5c5a6 f6c6a7 f6c7a8 f7c8aa f7c9ab f8cbac "
    "f8ccad f8cdae f9ceb0 f9d0b1 fad1b2 fad2b3 fbd3b4 fbd5b6 fbd6b7 fcd7b8 fcd8b9 fcdaba "
    "fddbbc fddcbd fddebe fddfbf fee0c1 fee1c2 fee3c3 fee4c5 ffe5c6 ffe7c7 ffe8c9 ffe9ca "
    "ffebcb ffeccd ffedce ffefcf fff0d1 fff2d2 fff3d3 fff4d5 fff6d6 fff7d8 fff8d9 fffada "
    "fffbdc fffcdd fffedf ffffe0 "
)


def colormap() -> ListedColormap:
    """``COLORMAP_HEX`` with each value split into red, green and blue in [0, 1]."""
    values = np.array([int(h, base=16) for h in COLORMAP_HEX.split()])
    rgb = np.stack([(values >> 16) & 0xFF, (values >> 8) & 0xFF, values & 0xFF], axis=1)
    return ListedColormap(rgb / 255.0, name="brown_to_yellow")


def loss(phi: jax.Array) -> jax.Array:
    """``1 - exp(-2 phi1^2) exp(-(phi0 - 0.7)^2 / 8)``: one minus a product of two Gaussians."""
    return 1.0 - jnp.exp(-2.0 * phi[1] ** 2) * jnp.exp(-((phi[0] - 0.7) ** 2) / 8.0)


def trajectory(optimizer: adamjax.GradientTransformation, steps: int) -> np.ndarray:
    """The start point and the point after each step, shape ``(steps + 1, 2)``."""

    def step(carry, _):
        phi, state = carry
        updates, state = optimizer.update(jax.grad(loss)(phi), state, phi)
        phi = adamjax.apply_updates(phi, updates)
        return (phi, state), phi

    phi0 = jnp.asarray(START, jnp.float32)
    run = jax.jit(lambda phi: jax.lax.scan(step, (phi, optimizer.init(phi)), length=steps)[1])
    return np.vstack([np.asarray(phi0)[None], np.asarray(run(phi0))])


def plot(paths: dict[str, np.ndarray], out: Path) -> Path:
    grid = np.arange(-1.0, 1.0, 0.01)
    phi0, phi1 = np.meshgrid(grid, grid)
    surface = 1.0 - np.exp(-2.0 * phi1**2) * np.exp(-((phi0 - 0.7) ** 2) / 8.0)
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, len(paths), sharey=True)
    for ax, (name, path) in zip(axes, paths.items(), strict=True):
        ax.contourf(phi0, phi1, surface, levels=256, cmap=colormap())
        ax.contour(
            phi0, phi1, surface, levels=np.arange(0.0, 1.0, 0.1), colors="black", linewidths=0.5
        )
        ax.plot(path[:, 0], path[:, 1], "o-", color="#2b8cbe", ms=3, lw=1)
        ax.plot(0.7, 0.0, "*", color="white", ms=12, mec="black")
        ax.set(xlabel="phi0", title=name, aspect="equal", xlim=(-1, 1), ylim=(-1, 1))
    axes[0].set_ylabel("phi1")
    out.mkdir(parents=True, exist_ok=True)
    path_png = out / "loss_surface.png"
    fig.savefig(path_png, dpi=110)
    return path_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="the same run")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plot goes")
    args = parser.parse_args(argv)

    optimizers = {
        "gradient descent (lr 0.08)": adamjax.sgd(0.08),
        "normalized gradients (lr 0.08)": adamjax.normalized_gradient(0.08),
        "Adam (lr 0.05)": adamjax.adam(0.05),
    }
    paths = {name: trajectory(opt, args.steps) for name, opt in optimizers.items()}
    for name, path in paths.items():
        end = path[-1]
        swing = np.ptp(path[-10:, 1])
        print(
            f"{name:32s} final phi ({end[0]:+.4f}, {end[1]:+.4f})  "
            f"loss {float(loss(jnp.asarray(end))):.6f}  phi1 swing over the last 10 steps "
            f"{swing:.4f}"
        )
    print(f"saved {plot(paths, args.out)}")


if __name__ == "__main__":
    main()
