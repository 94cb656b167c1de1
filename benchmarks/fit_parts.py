"""Where the time of ``python -m lit_mnist fit`` goes, part by part.

Runs the command as a user does (``python -m lit_mnist fit``, the post's experiment, in a fresh folder), with clocks
around its parts, and prints one table: start-up (the interpreter, imports, the command line, the data, the graph and
the sanity check, up to the first training step), the training steps, the validations, the drawings after them,
the checkpoints, the test pass and its figures, and the exit. The clocks cost a few microseconds a step; run it
alone (check ``ps`` first), and take whole-command times from versus_post.py, which runs without them.

    python benchmarks/fit_parts.py --data-dir ../shared/data --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = (
    ("start-up", "interpreter, imports, command line, data, graph, sanity check: up to the first step"),
    ("training steps", "the 5,000 steps, with their logging and progress bar"),
    ("validations", "the ten passes over the 5,000 validation digits"),
    ("drawings", "histograms and first-layer units, at the start and after each validation"),
    ("checkpoints", "every checkpoint written"),
    ("test pass", "the 10,000 test digits, without the figures"),
    ("test figures", "confusion matrix, misclassified digits, PR curves, projector"),
    ("exit", "from the end of the test pass to the end of the process, and from training's end to the test pass"),
)


def child(clock_file: str, started: float) -> None:
    """Run ``python -m lit_mnist`` on this process's sys.argv, as the command would, timing its parts into clock_file;
    ``started`` is when the parent started this process."""
    from lightning.pytorch import Callback
    from torch.utils.tensorboard import SummaryWriter

    import lit_mnist.__main__ as entry
    from lit_mnist.cli import LitMNISTCLI
    from lit_mnist.tensorboard import extras
    from lit_mnist.tensorboard.extras import TensorBoardExtras
    from lit_mnist.tensorboard.figures import TestFigures
    from lit_mnist.trainer import Trainer

    clocks: dict[str, float] = {"started": started, "imported": time.time()}
    spent = dict.fromkeys(("drawings", "checkpoints", "test figures", "validations", "histograms", "projector"), 0.0)
    spent_at: dict[str, dict[str, float]] = {}  # what the clocks above had added up at each of the events below

    def event(name: str) -> None:
        clocks[name], spent_at[name] = time.time(), dict(spent)

    def timed(owner: type, name: str, part: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    timed(TensorBoardExtras, "_draw_network", "drawings")
    timed(extras, "_add_histogram", "histograms")  # inside the drawings
    timed(SummaryWriter, "add_embedding", "projector")  # inside the test figures
    timed(Trainer, "save_checkpoint", "checkpoints")
    for owner in (TestFigures, TensorBoardExtras):
        timed(owner, "on_test_epoch_end", "test figures")
        timed(owner, "on_test_batch_end", "test figures")

    class Clock(Callback):
        """A validation's clock runs to the end of the callbacks' on_validation_end, without the drawings and
        checkpoints that it holds, which have clocks of their own."""

        def on_train_start(self, trainer, pl_module):
            event("train start")

        def on_validation_start(self, trainer, pl_module):
            self._validation = time.perf_counter() - spent["drawings"] - spent["checkpoints"]

        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                now = time.perf_counter() - spent["drawings"] - spent["checkpoints"]
                spent["validations"] += now - self._validation

        def on_train_end(self, trainer, pl_module):
            event("train end")

        def on_test_start(self, trainer, pl_module):
            event("test start")

        def on_test_end(self, trainer, pl_module):
            event("test end")

    callbacks = LitMNISTCLI.persistent_callbacks
    LitMNISTCLI.persistent_callbacks = lambda self: [Clock(), *callbacks(self)]
    try:
        entry.main()
    finally:
        Path(clock_file).write_text(json.dumps({"clocks": clocks, "spent": spent, "spent_at": spent_at}))


def parts(record: dict, ended: float) -> dict[str, float]:
    """The parts' seconds: each stretch between two events, less what the clocks inside it added up (the drawing at
    step 0 falls before the first step, the final checkpoint after training's end)."""
    clocks, spent, spent_at = record["clocks"], record["spent"], record["spent_at"]

    def inside(first: str, last: str, *names: str) -> float:
        return sum(spent_at[last][name] - spent_at[first][name] for name in names)

    return {
        "start-up": clocks["train start"] - clocks["started"] - spent_at["train start"]["drawings"],
        "training steps": clocks["train end"]
        - clocks["train start"]
        - inside("train start", "train end", "validations", "drawings", "checkpoints"),
        "validations": spent["validations"],
        "drawings": spent["drawings"],
        "checkpoints": spent["checkpoints"],
        "test pass": clocks["test end"] - clocks["test start"] - inside("test start", "test end", "test figures"),
        "test figures": spent["test figures"],
        # What lies between training's end and the test pass goes here too.
        "exit": ended
        - clocks["test end"]
        + clocks["test start"]
        - clocks["train end"]
        - inside("train end", "test start", "checkpoints"),
        "of which imports": clocks["imported"] - clocks["started"],
        "of which histograms": spent["histograms"],
        "of which the projector": spent["projector"],
    }


def run_once(command_line: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        clock_file = str(Path(folder) / "clocks.json")
        started = time.time()
        code = f"import sys, fit_parts; sys.argv[1:] = {command_line!r}; fit_parts.child({clock_file!r}, {started!r})"
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
        subprocess.run([sys.executable, "-c", code], cwd=folder, env=environment, check=True, stdout=subprocess.DEVNULL)
        ended = time.time()
        record = json.loads(Path(clock_file).read_text())
    result = parts(record, ended)
    result["whole"] = ended - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("fit_options", nargs="*", help="more options for fit, after --")
    args = parser.parse_args()
    command_line = ["fit", "--data.data_dir", str(Path(args.data_dir).resolve()), *args.fit_options]
    runs = []
    for round in range(args.rounds):
        runs.append(run_once(command_line))
        print(f"round {round + 1}: {runs[-1]['whole']:.1f} s", flush=True)
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    print(f"\npython -m lit_mnist {' '.join(command_line)}, median of {args.rounds}\n")
    print("| part | what it holds | seconds | share |\n| --- | --- | --- | --- |")
    for name, what in PARTS:
        print(f"| {name} | {what} | {medians[name]:.2f} | {medians[name] / medians['whole']:.0%} |")
    print(f"| whole command | | {medians['whole']:.2f} | |")
    print(f"\nOf the start-up, the imports of lit_mnist's command line: {medians['of which imports']:.2f} s")
    print(f"Of the drawings, the histograms: {medians['of which histograms']:.2f} s")
    print(f"Of the test figures, the projector: {medians['of which the projector']:.2f} s")


if __name__ == "__main__":
    main()
