"""The post's experiment four ways, side by side: the post's own TensorFlow program, a plain PyTorch loop,
Lightning's floor (the same loop in Lightning's Trainer with nothing else on) and ``python -m lit_mnist fit``.

Each is a whole command as a user runs it, start-up and test pass included, in a fresh folder; they alternate round
by round so that a slower spell of the machine slows them all. It prints each one's wall time per round, the median,
its ratio to the post's program, and its test accuracy. Lightning's floor is what no Lightning port goes below: fit's
distance from it is this project's own cost, the floor's distance from the post's program is Lightning's.

TensorFlow is needed for the post's program only, and only here: give the Python of an environment that has it
(``python -m venv .venv-tf && .venv-tf/bin/pip install tensorflow``).

    python benchmarks/versus_post.py --data-dir ../shared/data --tf-python .venv-tf/bin/python --rounds 3
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def programs(data_dir: str, tf_python: str) -> dict[str, tuple[list[str], str, float]]:
    """Each program's command line, the pattern of its test accuracy in its output, and what that figure is out of."""
    return {
        "the post's code (TensorFlow, tf.compat.v1)": (
            [tf_python, str(HERE / "the_post.py"), "--data-dir", data_dir, "--log-dir", "post_logs"],
            r"Test accuracy:\s+([\d.]+) %",
            100,
        ),
        "benchmarks/plain_loop.py": (
            [sys.executable, str(HERE / "plain_loop.py"), "--data-dir", data_dir],
            r"test accuracy ([\d.]+)",
            1,
        ),
        "benchmarks/bare_loop.py (Lightning's floor)": (
            [sys.executable, str(HERE / "bare_loop.py"), "--data-dir", data_dir],
            r"test accuracy ([\d.]+)",
            1,
        ),
        "python -m lit_mnist fit": (
            [sys.executable, "-m", "lit_mnist", "fit", "--data.data_dir", data_dir],
            r"acc/test\s+([\d.]+)",
            1,
        ),
    }


def run(name: str, command: list[str], pattern: str, out_of: float) -> tuple[float, float]:
    """Wall time and test accuracy (a fraction) of one run, in a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
    return seconds, float(re.findall(pattern, result.stdout)[-1]) / out_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw/")
    parser.add_argument("--tf-python", required=True, help="a Python whose environment has TensorFlow")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    accuracies: dict[str, list[float]] = {}
    commands = programs(str(Path(args.data_dir).resolve()), args.tf_python)
    for round in range(1, args.rounds + 1):
        for name, (command, pattern, out_of) in commands.items():
            seconds, accuracy = run(name, command, pattern, out_of)
            times.setdefault(name, []).append(seconds)
            accuracies.setdefault(name, []).append(accuracy)
            print(f"round {round}: {name}: {seconds:.1f} s, test accuracy {accuracy:.2%}", flush=True)
    post = statistics.median(next(iter(times.values())))
    print(f"\n| program, the post's 5,000 steps of 100 | wall time, median of {args.rounds} | rounds | against the "
          "post's code | test accuracy |\n| --- | --- | --- | --- | --- |")  # fmt: skip
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rounds = ", ".join(f"{value:.1f}" for value in seconds)
        accuracy = statistics.median(accuracies[name])
        print(f"| {name} | {median:.1f} s | {rounds} | {median / post:.2f} | {accuracy:.2%} |")


if __name__ == "__main__":
    main()
