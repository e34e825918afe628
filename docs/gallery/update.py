"""Copy the pictures the examples save into the docs gallery.

    .venv/bin/python docs/gallery/update.py          # copy examples/out/<picture>.png here
    .venv/bin/python docs/gallery/update.py --run    # run every example (full settings) first

Run from anywhere; paths are taken relative to this file. The pictures it copies are the ones
docs/gallery/index.md shows; a missing one is reported with the command that makes it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GALLERY = Path(__file__).resolve().parent
OUT = ROOT / "examples" / "out"

# picture -> the example script that saves it
PICTURES = {
    "quadratic_1d.png": "quadratic_1d.py",
    "adam_table.png": "adam_table.py",
    "linear_regression.png": "linear_regression.py",
    "quickstart_decision_boundary.png": "quickstart.py",
    "loss_surface.png": "loss_surface.py",
    "rosenbrock.png": "rosenbrock.py",
    "effective_learning_rate.png": "effective_learning_rate.py",
    "sparse_gradients.png": "sparse_gradients.py",
    "sparse_rows.png": "sparse_rows.py",
    "digits_cnn.png": "digits_cnn.py",
    "sentiment_rnn.png": "sentiment_rnn.py",
    "signal_to_noise.png": "signal_to_noise.py",
    "ensemble.png": "ensemble.py",
    "sweep.png": "sweep.py",
    "family.png": "family.py",
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Copy the examples' pictures into the gallery.")
    parser.add_argument("--run", action="store_true", help="run every example first")
    args = parser.parse_args()
    if args.run:
        for script in dict.fromkeys(PICTURES.values()):
            print(f"running examples/{script}", flush=True)
            subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=ROOT, check=True)
    missing = []
    for picture, script in PICTURES.items():
        source = OUT / picture
        if not source.exists():
            missing.append(f".venv/bin/python examples/{script}")
            continue
        shutil.copyfile(source, GALLERY / picture)
        print(f"copied {source.relative_to(ROOT)} -> {(GALLERY / picture).relative_to(ROOT)}")
    if missing:
        raise SystemExit("missing pictures; make them with:\n  " + "\n  ".join(missing))


if __name__ == "__main__":
    main()
