"""Training time and test accuracy of whole recipes, side by side in one run: `configs/tuned.yaml` against the faster
recipes, each over the same seeds.

    python benchmarks/recipes.py --data-dir ../shared/data
    python benchmarks/recipes.py --data-dir ../shared/data --configs tuned fast budget --seeds 1 2 3

Each run is `python -m lit_mnist fit --config configs/NAME.yaml --seed_everything S` as a user runs it (in this
process, in a temporary folder, progress bar off). Training time is the time from the start of training to its end
(validations included, the test pass and start-up not). The runs alternate (tuned seed 1, fast seed 1, tuned seed 2,
...) so that a slow spell of the machine falls on both. Run it alone.
"""

import argparse
import statistics
import sys
import time
import unittest.mock
from pathlib import Path

import lightning.pytorch as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import in_temporary_folder  # noqa: E402

from lit_mnist.cli import LitMNISTCLI  # noqa: E402


class TrainingClock(pl.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def run(config: str, seed: int, data_dir: str) -> tuple[float, float]:
    """Seconds of training and the test accuracy of one run."""
    # LightningCLI warns when it gets both args and a command line of its own (this script's).
    with in_temporary_folder(), unittest.mock.patch("sys.argv", [sys.argv[0]]):
        cli = LitMNISTCLI(
            args=["--config", str(REPO / "configs" / f"{config}.yaml"), "--data.data_dir", data_dir,
                  "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false"],
            run=False,
        )  # fmt: skip
        clock = TrainingClock()
        cli.trainer.callbacks.append(clock)
        cli.trainer.fit(cli.model, cli.datamodule)
        (results,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return clock.seconds, results["acc/test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--configs", nargs="+", default=["tuned", "fast"], help="the first is the reference")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args()

    results: dict[str, list[tuple[float, float]]] = {config: [] for config in args.configs}
    for seed in args.seeds:
        for config in args.configs:
            seconds, accuracy = run(config, seed, str(Path(args.data_dir).resolve()))
            results[config].append((seconds, accuracy))
            print(f"{config:>8} seed {seed}: {seconds:7.1f} s of training, test accuracy {accuracy:.2%}", flush=True)

    reference = statistics.mean(seconds for seconds, _ in results[args.configs[0]])
    print(f"\n{'config':>8}  {'mean training time':>18}  {'time / ' + args.configs[0]:>14}  {'mean test accuracy':>18}"
          f"  {'lowest':>7}  {'highest':>7}")  # fmt: skip
    for config, runs in results.items():
        seconds = statistics.mean(s for s, _ in runs)
        accuracies = [a for _, a in runs]
        print(f"{config:>8}  {seconds:16.1f} s  {seconds / reference:14.3f}  {statistics.mean(accuracies):18.2%}"
              f"  {min(accuracies):7.2%}  {max(accuracies):7.2%}")  # fmt: skip


if __name__ == "__main__":
    main()
