"""What each of fit's features costs a training step, switched on one after another from Lightning's floor.

Each variant trains 1,100 steps of the seed config in this process, and its steady cost per step is the mean of its
fastest tenth of 50-step stretches (throughput.py's measure), the least over the rounds: other work only ever adds
time, and on a shared VM whole runs fall into slow spells. The variants alternate round by round: Lightning's floor
(bare_loop.py), the floor with as many callbacks that do nothing as fit has callbacks, then fit with no logger,
progress bar, checkpoints or TensorBoard extras, then with the logger, the bar, the checkpoints, and last everything
(fit's defaults).

    python benchmarks/step_cost.py --data-dir ../shared/data --rounds 5
"""

import argparse
from pathlib import Path

import bare_loop
import plain_loop
from lightning.pytorch import Callback
from throughput import EXTRAS_OFF, StepTimer, fastest_tenth, in_temporary_folder, train_watched

STEPS, WARMUP = 1100, 100
FIT_CALLBACKS = 13  # as many as trainer.callbacks lists for fit with its defaults
NO_LOGGER, NO_BAR, NO_CHECKPOINTS = (
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_checkpointing=false",
)
VARIANTS = {
    "fit, no logger, bar, checkpoints or extras": [*EXTRAS_OFF, NO_LOGGER, NO_BAR, NO_CHECKPOINTS],
    "+ the TensorBoard logger": [*EXTRAS_OFF, NO_BAR, NO_CHECKPOINTS],
    "+ the progress bar": [*EXTRAS_OFF, NO_CHECKPOINTS],
    "+ the checkpoints": EXTRAS_OFF,
    "+ the TensorBoard extras: fit's defaults": [],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw/")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    args.data_dir = str(Path(args.data_dir).resolve())  # the fits run in temporary folders
    data = plain_loop.load(args.data_dir)
    floors = {
        "Lightning's floor (bare_loop.py)": [],
        f"the floor with {FIT_CALLBACKS} callbacks that do nothing": [Callback() for _ in range(FIT_CALLBACKS)],
    }
    costs: dict[str, list[float]] = {}
    for round in range(1, args.rounds + 1):
        for name, callbacks in floors.items():
            timer = StepTimer(WARMUP)
            bare_loop.train(data, STEPS, callbacks=[timer, *callbacks])
            costs.setdefault(name, []).append(fastest_tenth(timer.stretches))
        for name, options in VARIANTS.items():
            timer = StepTimer(WARMUP)
            with in_temporary_folder():
                train_watched("fit", args.data_dir, STEPS, timer, options)
            costs.setdefault(name, []).append(fastest_tenth(timer.stretches))
        print(f"round {round}: " + ", ".join(f"{seconds[-1] * 1e3:.3f}" for seconds in costs.values()), flush=True)
    floor = min(costs["Lightning's floor (bare_loop.py)"])
    print(f"\n| variant | ms per step, least of {args.rounds} | rounds | over the floor |\n| --- | --- | --- | --- |")
    for name, seconds in costs.items():
        rounds = ", ".join(f"{value * 1e3:.2f}" for value in seconds)
        print(f"| {name} | {min(seconds) * 1e3:.2f} | {rounds} | {(min(seconds) - floor) * 1e3:+.2f} ms |")


if __name__ == "__main__":
    main()
