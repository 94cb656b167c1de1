"""`sweep --workers N` against one worker: the same 12 trials, one after another in each setting, wall time each.

Each trial is the post's network and SGD for 1,100 steps (two epochs, validated at the end only, so that no trial is
pruned before its end and both settings do the same work), at one of 12 (width, learning rate) pairs put in the
study before it starts. The settings alternate round by round; measure alone (check `ps` first).

    python benchmarks/sweep_workers.py --data-dir ../shared/data --rounds 2
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
SPACE = "model.hidden_sizes: {depth: {low: 2, high: 2}, width: {low: 100, high: 800}}\n" \
        "model.learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\n"  # fmt: skip
TRIALS = [{"depth": 2, "width": width, "learning_rate": rate} for width in (100, 300, 500, 800)
          for rate in (1e-5, 1e-4, 1e-3)]  # fmt: skip
FIT = ["--trainer.max_steps", "1100", "--trainer.check_val_every_n_epoch", "2"]


def run(data_dir: Path, workers: int) -> float:
    """Wall time of the 12 trials with ``workers`` workers, in a fresh folder."""
    work = Path(tempfile.mkdtemp(prefix=f"sweep-workers-{workers}-"))
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
        start = time.perf_counter()
        subprocess.run(command, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        seconds = time.perf_counter() - start
        finished = optuna.load_study(study_name="bench", storage=storage).get_trials()
        assert sum(trial.state.is_finished() for trial in finished) >= len(TRIALS), "not every trial ran"
        return seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the folder that holds MNIST/raw/")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="the workers compared with one")
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], args.workers: []}
    for round in range(args.rounds):
        for workers in times if round % 2 == 0 else reversed(list(times)):
            times[workers].append(run(args.data_dir.resolve(), workers))
            print(f"round {round}: {workers} worker(s): {times[workers][-1]:.1f} s", flush=True)
    one = statistics.median(times[1])
    print(f"\n{len(TRIALS)} trials, {os.cpu_count()} cores, median of {args.rounds} rounds")
    print("| workers | wall time | against one worker |\n| --- | --- | --- |")
    for workers, seconds in times.items():
        middle = statistics.median(seconds)
        rounds = ", ".join(f"{value:.1f}" for value in seconds)
        print(f"| {workers} | {middle:.1f} s (rounds {rounds}) | {middle / one:.2f} |")


if __name__ == "__main__":
    main()
