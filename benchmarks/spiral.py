"""The post's three networks on the TensorFlow Playground's spiral, measured: each config in configs/spiral_*.yaml
over the same seeds, at its own learning rate and at the two others tried, with its test accuracy and wall time.

    python benchmarks/spiral.py --seeds 1 2 3

Each run is `python -m lit_mnist fit --config configs/spiral_NAME.yaml --seed_everything S`, as a user runs it (in a
process of its own, in a temporary folder, progress bar off): its wall time is a user's, start-up included. Run it
alone.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["spiral_shallow", "spiral_shallow_features", "spiral_deep"]
LEARNING_RATES = [0.003, 0.01, 0.03]


def run(config: str, seed: int, learning_rate: float) -> tuple[float, float]:
    """The test accuracy and wall time of one run."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "lit_mnist", "fit", "--config", str(REPO / "configs" / f"{config}.yaml"),
                   "--seed_everything", str(seed), "--model.learning_rate", str(learning_rate),
                   "--trainer.enable_progress_bar", "false"]  # fmt: skip
        start = time.perf_counter()
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - start
    return float(re.search(r"acc/test\s+([0-9.]+)", result.stdout).group(1)), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args()
    seeds = " / ".join(map(str, args.seeds))
    print(f"| config | learning rate | test accuracy, seeds {seeds} | mean | wall time |")
    print("| --- | --- | --- | --- | --- |")
    for config in CONFIGS:
        own = yaml.safe_load((REPO / "configs" / f"{config}.yaml").read_text())["model"]["learning_rate"]
        for learning_rate in LEARNING_RATES:
            results = [run(config, seed, learning_rate) for seed in args.seeds]
            accuracies = [accuracy for accuracy, _ in results]
            each = " / ".join(f"{accuracy:.1%}" for accuracy in accuracies)
            rate = f"**{learning_rate}** (the config's)" if learning_rate == own else str(learning_rate)
            seconds = f"{statistics.median(elapsed for _, elapsed in results):.1f} s"
            print(f"| {config}.yaml | {rate} | {each} | {statistics.mean(accuracies):.1%} | {seconds} |", flush=True)


if __name__ == "__main__":
    main()
