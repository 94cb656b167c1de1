"""`sweep --workers 2` against one worker, and against two workers started as two commands that each take every
core: the same 12 trials in each setting, wall time each.

Each trial is the post's network and SGD for 1,100 steps (two epochs, validated at the end only, so that no trial is
pruned before its end and both settings do the same work), at one of 12 (width, learning rate) pairs put in the
study before it starts. The settings alternate round by round; measure alone (check `ps` first).

    python benchmarks/sweep_workers.py --data-dir data --rounds 3
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
SPACE = "model.hidden_sizes: {depth: {low: 1, high: 2}, width: {low: 100, high: 800}}\n" \
        "model.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\n"  # fmt: skip
TRIALS = [{"depth": 2, "width": width, "learning_rate": rate} for width in (100, 300, 500, 800)
          for rate in (1e-5, 1e-4, 1e-3)]  # fmt: skip
FIT = ["--trainer.max_steps", "1100", "--trainer.check_val_every_n_epoch", "2"]


SETTINGS = {
    "1 worker": (1, 1),
    "`--workers 2`: 2 workers, each with its share of the threads": (2, 1),
    "2 commands started together, each with every thread": (1, 2),
}


def run(data_dir: Path, workers: int, commands: int) -> float:
    """Wall time of the 12 trials with ``commands`` sweep commands of ``--workers workers`` each, in a fresh folder."""
    work = Path(tempfile.mkdtemp(prefix="sweep-workers-"))
    try:
        (work / "space.yaml").write_text(SPACE)
        storage = f"sqlite:///{work / 'study.db'}"
        study = optuna.create_study(study_name="bench", storage=storage, direction="maximize")
        study.set_user_attr("space", SPACE)
        for params in TRIALS:
            study.enqueue_trial(params)
        command = [sys.executable, "-m", "lit_mnist", "sweep", "--data.data_dir", str(data_dir), *FIT,
                   "--space", "space.yaml", "--trials", str(len(TRIALS)), "--study_name", "bench",
                   "--storage", storage, "--workers", str(workers)]  # fmt: skip
        env = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
        start = time.perf_counter()
        processes = [subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**env, "PYTHONPATH": str(REPO)}) for _ in range(commands)]  # fmt: skip
        assert all(process.wait() == 0 for process in processes), "a sweep failed"
        seconds = time.perf_counter() - start
        finished = optuna.load_study(study_name="bench", storage=storage).get_trials()
        assert sum(trial.state.is_finished() for trial in finished) >= len(TRIALS), "not every trial ran"
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the folder that holds MNIST/raw/")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for round in range(args.rounds):
        for name in SETTINGS if round % 2 == 0 else reversed(list(SETTINGS)):
            times[name].append(run(args.data_dir.resolve(), *SETTINGS[name]))
            print(f"round {round}: {name}: {times[name][-1]:.1f} s", flush=True)
    one = statistics.median(times["1 worker"])
    print(f"\n{len(TRIALS)} trials, {os.cpu_count()} cores, median of {args.rounds} rounds")
    print("| setting | wall time | against one worker |\n| --- | --- | --- |")
    for name, seconds in times.items():
        middle = statistics.median(seconds)
        rounds = ", ".join(f"{value:.1f}" for value in seconds)
        print(f"| {name} | {middle:.1f} s (rounds {rounds}) | {middle / one:.2f} |")


if __name__ == "__main__":
    main()
