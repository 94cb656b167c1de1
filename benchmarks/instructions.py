"""Instructions per training step, counted by Valgrind: the plain loop, the bare Lightning loop and lit_mnist's fit.

    python benchmarks/instructions.py --data-dir ../shared/data

throughput.py times (a) the plain PyTorch loop, (d) the bare Lightning loop and (b) lit_mnist's fit; on a shared
machine its per-step ratios move by several percent from one run to the next, as much as the project's own cost per
step. This counts the instructions each executes per step with Valgrind's callgrind, a figure that other work on the
machine barely changes: how much more work (b) does per step than (d), and whether a change adds or removes any.
It is not a time ratio: under Valgrind MKL takes its AVX2 kernels (there is no AVX-512 on Valgrind's simulated CPU),
about twice the instructions for the same matrix products, and one instruction of the Python interpreter takes
longer than one of MKL's.

Each run is its own process under `valgrind --tool=callgrind` with one thread (OMP_NUM_THREADS=1: the OpenMP workers'
spin-waiting would count too). Collection is on from step --start to step --start + --steps only, which leaves out
start-up, the first steps and validation; the default 50 steps hold exactly one of (b)'s logging intervals. The runs
go at once, a few minutes of start-up and several seconds a step each under Valgrind: about 25 minutes for three on
two cores. --runs can add (b) with one feature off (its TensorBoard extras, progress bar or checkpoints), whose
difference from (b) is what that feature does per step:

    python benchmarks/instructions.py --data-dir ../shared/data --runs fit fit-extras fit-progress-bar fit-checkpoints
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "plain": "(a) plain PyTorch loop",
    "bare": "(d) bare Lightning loop",
    "fit": "(b) lit_mnist fit",
    # (b) with one of its features off: the difference from (b) is that feature's own count.
    "fit-extras": "(b) without the TensorBoard extras",
    "fit-progress-bar": "(b) without the progress bar",
    "fit-checkpoints": "(b) without checkpoints",
}


class Collection:
    """Turns callgrind's collection on after step ``start`` and ends the process after step ``stop``."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def at_step(self, steps_done: int) -> None:
        if steps_done == self.start:
            self._control("on")
        elif steps_done == self.stop:
            self._control("off")
            os._exit(0)  # callgrind writes its counts as the process ends; the rest of the run is not needed

    @staticmethod
    def _control(state: str) -> None:
        command = ["callgrind_control", f"--instr={state}", str(os.getpid())]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def measured_run(name: str, data_dir: str, collection: Collection) -> None:
    """One of the runs, in this process (which runs under Valgrind)."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import lightning.pytorch as pl
    import plain_loop

    class AtBatchStart(pl.Callback):
        # Batch start to batch start: each measured step holds all of its own hooks and Lightning's bookkeeping.
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            collection.at_step(trainer.global_step)

    steps = collection.stop + 1
    if name == "plain":
        plain_loop.train(plain_loop.load(data_dir), steps, on_step=collection.at_step)
    else:
        import throughput

        options = {
            "bare": [],
            "fit": [],
            "fit-extras": throughput.EXTRAS_OFF,
            "fit-progress-bar": ["--trainer.enable_progress_bar=false"],
            "fit-checkpoints": ["--trainer.enable_checkpointing=false"],
        }[name]
        throughput.train_watched("bare" if name == "bare" else "fit", data_dir, steps, AtBatchStart(), options)
    raise SystemExit(f"{name} ended before step {collection.stop}")


def count(name: str, data_dir: str, start: int, steps: int, folder: Path) -> subprocess.Popen:
    """Starts one run under callgrind, in a folder of its own."""
    work = folder / name
    work.mkdir()
    command = [
        *("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={work / 'callgrind.out'}"),
        *(sys.executable, str(Path(__file__).resolve()), "--measure", name, "--data-dir", data_dir),
        *("--start", str(start), "--steps", str(steps)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    with (work / "log.txt").open("w") as log:
        return subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def split(path: Path) -> tuple[int, Counter]:
    """The total instructions of a callgrind output file, and the same split into MKL, the Python interpreter, the
    rest of PyTorch and everything else."""
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(path)], capture_output=True, text=True, check=True
    ).stdout
    total, parts = 0, Counter()
    for line in report.splitlines():
        match = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$", line)
        if not match:
            continue
        instructions, function = int(match.group(1).replace(",", "")), match.group(2)
        if function.startswith("PROGRAM TOTALS"):
            total = instructions
        elif "mkl_" in function:
            parts["MKL"] += instructions
        elif "libpython" in function:
            parts["Python interpreter"] += instructions
        elif "libtorch" in function or "libc10" in function:
            parts["rest of PyTorch"] += instructions
        else:
            parts["other"] += instructions
    return total, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--start", type=int, default=50, help="steps before collection starts")
    parser.add_argument("--steps", type=int, default=50, help="steps collected")
    parser.add_argument(
        "--runs", nargs="+", choices=RUNS, default=["plain", "bare", "fit"], help="which to count, all at once"
    )
    parser.add_argument("--measure", choices=RUNS, help=argparse.SUPPRESS)  # in the process under Valgrind
    args = parser.parse_args()
    if args.start < 1 or args.steps < 1:
        parser.error("--start and --steps must be at least 1")
    data_dir = str(Path(args.data_dir).resolve())
    if args.measure:
        measured_run(args.measure, data_dir, Collection(args.start, args.start + args.steps))
    if not (Path(data_dir) / "MNIST" / "raw").is_dir():
        raise SystemExit(f"no MNIST/raw folder in {data_dir}: give --data-dir the folder that holds it")
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install Valgrind (Debian: apt-get install valgrind)")

    per_step: dict[str, tuple[float, Counter]] = {}
    with tempfile.TemporaryDirectory() as folder:
        runs = {name: count(name, data_dir, args.start, args.steps, Path(folder)) for name in dict.fromkeys(args.runs)}
        try:
            for name, process in runs.items():
                output = Path(folder) / name / "callgrind.out"
                if process.wait() != 0 or not output.exists():
                    log = (Path(folder) / name / "log.txt").read_text().splitlines()
                    own = [line for line in log if line.strip() and not line.startswith("==")]  # not Valgrind's
                    raise SystemExit(f"{name} failed under Valgrind: {own[-1] if own else 'no output'}")
                total, parts = split(output)
                per_step[name] = total / args.steps, Counter({part: n / args.steps for part, n in parts.items()})
        finally:
            for process in runs.values():  # after a failure or Ctrl-C, the others would run on for many minutes
                if process.poll() is None:
                    process.kill()
                    process.wait()

    print(f"instructions per training step, steps {args.start + 1} to {args.start + args.steps}, one thread:")
    for name, (total, parts) in per_step.items():
        shares = ", ".join(f"{part} {n / 1e6:.2f} M" for part, n in parts.most_common())
        print(f"  {RUNS[name]:36s} {total / 1e6:7.2f} M  ({shares})")
    for name, reference in (("bare", "plain"), ("fit", "bare")):
        if name in per_step and reference in per_step:
            (more, more_parts), (less, less_parts) = per_step[name], per_step[reference]
            by_part = ", ".join(f"{part} {(more_parts[part] - less_parts[part]) / 1e6:+.2f} M" for part in more_parts)
            print(
                f"  {RUNS[name][:3]} over {RUNS[reference][:3]}: {(more - less) / 1e6:+.2f} M a step "
                f"({more / less - 1:+.2%}): {by_part}"
            )
    for name in per_step:
        if name.startswith("fit-") and "fit" in per_step:
            own = per_step["fit"][0] - per_step[name][0]
            print(f"  {RUNS[name]}: the feature's own {own / 1e6:+.2f} M a step")


if __name__ == "__main__":
    main()
