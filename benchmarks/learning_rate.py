"""The post's learning-rate claim, checked: its experiment at 0.0001 and at 0.01, the first 1,000 steps of each as the
post prints them (the batch cost every 100 steps), over the same seeds; and what Lightning's learning-rate range test
(`lr_find`) suggests for the same network.

    python benchmarks/learning_rate.py --data-dir data --seeds 1 2 3

Runs in this process, in a temporary folder, with the post's experiment (`configs/seed.yaml`) as a user runs it. Run it
alone.
"""

import argparse
import contextlib
import io
import sys
import unittest.mock
from pathlib import Path

from lightning.pytorch import Callback

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import in_temporary_folder  # noqa: E402

from lit_mnist.cli import LitMNISTCLI  # noqa: E402

STEPS = 1000
PRINTED = range(0, STEPS + 1, 100)  # the post prints the batch's cost at steps 0, 100, 200, ...


class BatchCosts(Callback):
    """Each training step's batch cost, before the step's update (the post's printout)."""

    def __init__(self) -> None:
        self.costs: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.costs.append(float(outputs["loss"]))


def cli(seed: int, data_dir: str, *options: str) -> LitMNISTCLI:
    arguments = ["--config", str(REPO / "configs" / "seed.yaml"), "--data.data_dir", data_dir,
                 "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false", *options]  # fmt: skip
    with unittest.mock.patch("sys.argv", [sys.argv[0]]):
        return LitMNISTCLI(args=arguments, run=False)


def first_steps(seed: int, learning_rate: float, data_dir: str) -> list[float]:
    with in_temporary_folder():
        command = cli(seed, data_dir, "--model.learning_rate", str(learning_rate), "--trainer.max_steps", str(STEPS),
                      "--trainer.limit_val_batches", "0", "--trainer.logger", "false")  # fmt: skip
        costs = BatchCosts()
        command.trainer.callbacks.append(costs)
        command.trainer.fit(command.model, command.datamodule)
    return costs.costs


def range_test(seed: int, data_dir: str, min_lr: float) -> str:
    with in_temporary_folder(), contextlib.redirect_stdout(io.StringIO()):
        command = cli(seed, data_dir)
        suggestion = command.trainer.lr_find(command.model, datamodule=command.datamodule, min_lr=min_lr)
    return f"{suggestion:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--range-test-only", action="store_true", help="only the lr_find lines")
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())
    steps = ", ".join(map(str, PRINTED))
    print(f"| seed | learning rate | batch cost at steps {steps} | highest cost, steps 1-1000 | steps above 1,000 |")
    print("| --- | --- | --- | --- | --- |")
    for seed in args.seeds if not args.range_test_only else []:
        for learning_rate in (1e-4, 1e-2):
            costs = first_steps(seed, learning_rate, data_dir)
            printed = ", ".join(f"{costs[min(step, len(costs) - 1)]:.0f}" for step in PRINTED)
            above = sum(cost > 1000 for cost in costs)
            print(f"| {seed} | {learning_rate} | {printed} | {max(costs[1:]):.0f} | {above} |", flush=True)
    for min_lr in (1e-6, 1e-4):  # Lightning's range, then one that starts at the post's rate
        suggestions = [range_test(seed, data_dir, min_lr) for seed in args.seeds]
        print(f"lr_find --min_lr {min_lr:g} on the post's network, seeds {', '.join(map(str, args.seeds))}: "
              f"{', '.join(suggestions)}")  # fmt: skip


if __name__ == "__main__":
    main()
