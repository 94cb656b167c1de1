"""How much Lightning costs here: training throughput of (a) a plain PyTorch loop, (b) lit_mnist's fit, (c) a naive
Lightning port as tutorials write it, (d) Lightning's loop with nothing else, (e) lit_mnist's fit with its TensorBoard
extras switched off, side by side on the same machine; the test pass with and without the extras; whole-command wall
time, peak memory and the size of the seed run's event files.

    python benchmarks/throughput.py --data-dir ../shared/data

(a) and (b) train the post's network on the same batches for --steps steps with a validation pass each epoch; (b) runs
exactly what `python -m lit_mnist fit` runs (TensorBoard logging, progress bar, validation, checkpoints). (c) reads
torchvision's PIL images through ToTensor and a DataLoader and calls self.log every step. (d) is the floor of any
Lightning port: (a)'s network and batches in a LightningModule with no logger, callbacks, progress bar or checkpoints
(benchmarks/bare_loop.py). The default 1,100 steps are two epochs of 550 batches, so (b) and (d) validate at the same
steps. They alternate for --rounds rounds, (b) and (d) back to back, and each figure is the median; steps/s counts from
step --warmup on. The ratios are also given per step: each run is cut into 50-step stretches (one logging interval and
two progress-bar redraws each), and the fastest tenth of a run's stretches stands for its steps' own cost. On a shared
machine other work only ever adds time, and it moves whole runs by 10-20%, far more than what is being measured, so the
per-step ratios of runs taken back to back (b and d, b and e) are the figures to go by.
Then `benchmarks/plain_loop.py`, `benchmarks/bare_loop.py` (the floor of any Lightning port as a whole script) and
`python -m lit_mnist fit --config configs/seed.yaml` each run whole, 5,000 steps, in their own process, in turn for
--whole-rounds rounds: wall time (imports and data loading included, medians) and peak resident memory; then the same
three commands for one step, which leaves what each costs besides its steps.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import unittest.mock
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bare_loop  # noqa: E402
import lightning.pytorch as pl  # noqa: E402
import plain_loop  # noqa: E402
from lightning.pytorch.callbacks import LearningRateMonitor  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchvision import transforms  # noqa: E402
from torchvision.datasets import MNIST  # noqa: E402

from lit_mnist.cli import LitMNISTCLI  # noqa: E402
from lit_mnist.tensorboard.extras import TensorBoardExtras  # noqa: E402


class StepTimer(pl.Callback):
    """Seconds from the start of step `warmup` to the end of training, and the seconds per step of each stretch of
    STRETCH steps after it."""

    STRETCH = 50

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.seconds = warmup, None, None
        self.stretches: list[float] = []
        self._stretch_start: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            self.start = self._stretch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._stretch_start is not None and (trainer.global_step - self.warmup) % self.STRETCH == 0:
            now = time.perf_counter()
            self.stretches.append((now - self._stretch_start) / self.STRETCH)
            self._stretch_start = now

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def fastest_tenth(stretches: list[float]) -> float:
    """Mean seconds per step over the fastest tenth of the stretches."""
    fastest = sorted(stretches)[: max(1, len(stretches) // 10)]
    return sum(fastest) / len(fastest)


@contextmanager
def in_temporary_folder():
    previous = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(previous)


def plain(data, steps: int, warmup: int) -> float:
    marks = {}

    def on_step(step: int) -> None:
        if step == warmup:
            marks["start"] = time.perf_counter()

    plain_loop.train(data, steps, on_step=on_step)
    return (steps - warmup) / (time.perf_counter() - marks["start"])


# Every part of the TensorBoard extras (lit_mnist/tensorboard/extras.py) switched off, and the graph.
EXTRAS_OFF = [
    "--learning_rate_monitor=false", "--tensorboard.gradient_norms=false", "--tensorboard.speed=false",
    "--tensorboard.histograms=false", "--tensorboard.first_layer_units=0", "--tensorboard.embedding_digits=0",
    "--tensorboard.pr_curves=false", "--tensorboard.config_text=false", "--trainer.logger.log_graph=false",
]  # fmt: skip


class HookClock:
    """Adds up the seconds spent in some callbacks' hooks while the StepTimer runs: the extras' own cost, split into
    what runs with the training steps and the drawings after validations."""

    HOOKS = ("on_train_batch_start", "on_train_batch_end", "on_train_epoch_start", "on_validation_end")

    def __init__(self, timer: StepTimer, callbacks: list) -> None:
        self.timer, self.step_seconds, self.drawing_seconds, self.drawings = timer, 0.0, 0.0, 0
        for callback in callbacks:
            for name in self.HOOKS:
                drawing = name == "on_validation_end" and isinstance(callback, TensorBoardExtras)
                setattr(callback, name, self._timed(getattr(callback, name), drawing))

    def _timed(self, hook, drawing: bool):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            hook(*args, **kwargs)
            if self.timer.start is not None and self.timer.seconds is None:
                if drawing:
                    self.drawing_seconds += time.perf_counter() - start
                    self.drawings += 1
                else:
                    self.step_seconds += time.perf_counter() - start

        return timed


@dataclass
class ProjectRun:
    steps_per_second: float
    test_seconds: float
    extras_per_step: float = 0.0  # seconds inside the extras' hooks per training step
    extras_per_drawing: float = 0.0  # seconds of one drawing of histograms and units after a validation
    steps_per_epoch: int = 0
    stretches: list[float] = field(default_factory=list)  # seconds per step of each 50-step stretch


def seed_fit(data_dir: str, steps: int, options: list[str]) -> LitMNISTCLI:
    """`python -m lit_mnist fit --config configs/seed.yaml` for some steps, with more options, built but not run."""
    args = ["--config", str(REPO / "configs" / "seed.yaml"), "--data.data_dir", data_dir, "--trainer.max_steps"]
    # LightningCLI warns when it gets both args and a command line of its own (this script's).
    with unittest.mock.patch("sys.argv", [sys.argv[0]]):
        return LitMNISTCLI(args=[*args, str(steps), *options], run=False)


def train_watched(run: str, data_dir: str, steps: int, watcher: pl.Callback, options: Sequence[str] = ()) -> None:
    """Trains (d) the bare loop (run "bare") or (b) the seed config's fit with more options, for some steps, with
    ``watcher`` as the first callback: a step's own batch-start hooks run after the watcher's."""
    if run == "bare":
        bare_loop.train(plain_loop.load(data_dir), steps, callbacks=[watcher])
    else:
        cli = seed_fit(data_dir, steps, list(options))
        cli.trainer.callbacks.insert(0, watcher)
        cli.trainer.fit(cli.model, cli.datamodule)


def project(data_dir: str, steps: int, warmup: int, extras: bool = True) -> ProjectRun:
    """Training steps per second of `lit_mnist fit` (validation included), the seconds of its test pass, and the
    time spent in the TensorBoard extras' hooks (and Lightning's LearningRateMonitor's)."""
    with in_temporary_folder():
        cli = seed_fit(data_dir, steps, [] if extras else EXTRAS_OFF)
        timer = StepTimer(warmup)
        cli.trainer.callbacks.append(timer)
        extras_callbacks = [c for c in cli.trainer.callbacks if isinstance(c, (TensorBoardExtras, LearningRateMonitor))]
        clock = HookClock(timer, extras_callbacks)
        cli.trainer.fit(cli.model, cli.datamodule)
        start = time.perf_counter()
        cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        test_seconds = time.perf_counter() - start
    return ProjectRun(
        steps_per_second=(steps - warmup) / timer.seconds,
        test_seconds=test_seconds,
        extras_per_step=clock.step_seconds / (steps - warmup),
        extras_per_drawing=clock.drawing_seconds / max(clock.drawings, 1),
        steps_per_epoch=cli.trainer.num_training_batches,
        stretches=timer.stretches,
    )


class NaiveMNIST(pl.LightningModule):
    """The post's network as a typical tutorial writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1, self.layer2, self.layer3 = nn.Linear(784, 500), nn.Linear(500, 500), nn.Linear(500, 10)
        for layer in (self.layer1, self.layer2, self.layer3):
            nn.init.normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.layer3(F.relu(self.layer2(F.relu(self.layer1(x.view(x.size(0), -1))))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)


def bare(data, steps: int, warmup: int) -> tuple[float, list[float]]:
    """Steps per second, and seconds per step of each 50-step stretch, of the same batches through Lightning's loop
    with no logger, callbacks, progress bar or checkpoints."""
    timer = StepTimer(warmup)
    bare_loop.train(data, steps, callbacks=[timer])
    return (steps - warmup) / timer.seconds, timer.stretches


def naive(data_dir: str, steps: int, warmup: int) -> float:
    dataset = MNIST(data_dir, train=True, transform=transforms.ToTensor())
    train = DataLoader(Subset(dataset, range(5000, 60000)), batch_size=100, shuffle=True)
    val = DataLoader(Subset(dataset, range(5000)), batch_size=100)
    timer = StepTimer(warmup)
    with in_temporary_folder():
        trainer = pl.Trainer(max_steps=steps, callbacks=[timer], enable_model_summary=False)
        trainer.fit(NaiveMNIST(), train, val)
    return (steps - warmup) / timer.seconds


# Runs one command and reports its wall time and peak memory. It is started from this small launcher because Linux
# hands a forked child its parent's memory high-water mark: measured from this script (over 1 GiB by then), every
# command would report at least that much.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024)
"""


def whole_command(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds and peak resident MiB of one command run in its own process, and the MiB of event files."""
    with in_temporary_folder():
        result = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *command],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
        )
        events = sum(path.stat().st_size for path in Path().glob("lightning_logs/*/events.out.tfevents.*")) / 2**20
    code, seconds, mebibytes = result.stdout.split()
    if code != "0":
        raise SystemExit(f"failed: {' '.join(command)}")
    return float(seconds), float(mebibytes), events


def in_turn(commands: list[list[str]], rounds: int) -> list[list[tuple]]:
    """whole_command's figures for some commands run one after the other for some rounds, so that the machine's swings
    fall on all alike and each round's runs are taken back to back."""
    runs: list[list[tuple]] = [[] for _ in commands]
    for _ in range(rounds):
        for command, figures in zip(commands, runs):
            figures.append(whole_command(command))
    return runs


def compare_steps(data_dir: str, args: argparse.Namespace) -> None:
    """(a) to (e) in one process, alternating for args.rounds rounds."""
    data = plain_loop.load(data_dir)
    rates: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": [], "e": []}
    test_seconds: dict[str, list[float]] = {"b": [], "e": []}
    with_extras: list[ProjectRun] = []
    step: dict[str, list[float]] = {"b": [], "d": [], "e": []}  # seconds per step of each run's fastest stretches
    for round_number in range(1, args.rounds + 1):
        rates["a"].append(plain(data, args.steps, args.warmup))
        with_extras.append(project(data_dir, args.steps, args.warmup))
        rates["b"].append(with_extras[-1].steps_per_second)
        step["b"].append(fastest_tenth(with_extras[-1].stretches))
        test_seconds["b"].append(with_extras[-1].test_seconds)
        rate, bare_stretches = bare(data, args.steps, args.warmup)
        rates["d"].append(rate)
        step["d"].append(fastest_tenth(bare_stretches))
        without = project(data_dir, args.steps, args.warmup, extras=False)
        rates["e"].append(without.steps_per_second)
        step["e"].append(fastest_tenth(without.stretches))
        test_seconds["e"].append(without.test_seconds)
        rates["c"].append(naive(data_dir, args.naive_steps, args.warmup))
        print(
            f"round {round_number}: " + ", ".join(f"{k} {rates[k][-1]:.1f}" for k in "abcde") + " steps/s",
            file=sys.stderr,
        )
    a, b, c, d, e = (statistics.median(rates[key]) for key in "abcde")
    test_on, test_off = (statistics.median(test_seconds[key]) for key in "be")
    print(f"(a) plain PyTorch loop       {a:7.1f} steps/s")
    print(f"(b) lit_mnist fit            {b:7.1f} steps/s   b/a = {b / a:.3f}   b/d = {b / d:.3f}")
    print(f"(c) naive Lightning port     {c:7.1f} steps/s   c/a = {c / a:.3f}")
    print(
        f"(d) bare Lightning loop      {d:7.1f} steps/s   d/a = {d / a:.3f}   (Lightning's floor: nothing but the loop)"
    )
    print(f"(e) fit, TensorBoard extras off {e:5.1f} steps/s   b/e = {b / e:.3f}   (extras' cost on training)")
    print(
        f"per step, each run's fastest tenth of {StepTimer.STRETCH}-step stretches (median of rounds): "
        + ", ".join(f"({key}) {statistics.median(values) * 1000:.3f} ms" for key, values in step.items())
    )
    for name, other in (("b/d", "d"), ("b/e", "e")):  # runs taken back to back
        stepwise = [other_step / b_step for b_step, other_step in zip(step["b"], step[other])]
        whole = [rate_b / rate_other for rate_b, rate_other in zip(rates["b"], rates[other])]
        print(
            f"    {name} per step, round by round: {', '.join(f'{ratio:.3f}' for ratio in stepwise)} "
            f"(median {statistics.median(stepwise):.3f}); whole runs: {', '.join(f'{ratio:.3f}' for ratio in whole)} "
            f"(median {statistics.median(whole):.3f})"
        )
    # The extras' cost counted inside their hooks, which the machine's noise does not hide, and what it comes to
    # over the seed run: 5,000 steps, a drawing at the start and after each validation (each epoch and the last step).
    per_step = statistics.median(run.extras_per_step for run in with_extras)
    per_drawing = statistics.median(run.extras_per_drawing for run in with_extras)
    seed_steps, steps_per_epoch = 5000, with_extras[0].steps_per_epoch
    drawings = 1 + seed_steps // steps_per_epoch + (seed_steps % steps_per_epoch > 0)
    seed_seconds = seed_steps / b
    print(
        f"    inside the extras' hooks during (b): {per_step * 1000:.3f} ms per training step "
        f"({per_step * b:.2%} of a step), {per_drawing * 1000:.1f} ms per drawing after a validation"
    )
    print(
        f"    over the seed run ({seed_steps} steps, {drawings} drawings, {seed_seconds:.1f} s of training at (b)'s "
        f"rate): {(per_step * seed_steps + per_drawing * drawings) / seed_seconds:.2%} of its training time"
    )
    print(f"test pass of 10,000 digits: {test_on:.2f} s with the extras, {test_off:.2f} s without")


def compare_whole(data_dir: str, args: argparse.Namespace) -> None:
    """The plain script, Lightning's floor (the same steps in a bare Trainer) and lit_mnist's fit as whole commands,
    in turn."""
    commands = {
        "plain script": [sys.executable, str(REPO / "benchmarks" / "plain_loop.py"), "--data-dir", data_dir],
        "bare Lightning loop": [sys.executable, str(REPO / "benchmarks" / "bare_loop.py"), "--data-dir", data_dir],
        "lit_mnist fit": [
            *(sys.executable, "-m", "lit_mnist", "fit", "--config", str(REPO / "configs" / "seed.yaml")),
            *("--data.data_dir", data_dir),
        ],
    }
    runs = dict(zip(commands, in_turn(list(commands.values()), args.whole_rounds)))
    wall, mib = ({name: statistics.median(run[index] for run in runs[name]) for name in runs} for index in (0, 1))
    print(
        f"whole command, 5,000 steps (median of {args.whole_rounds}): "
        + "; ".join(f"{name} {wall[name]:.1f} s, {mib[name]:.0f} MiB peak" for name in commands)
    )
    for name, reference in (("bare Lightning loop", "plain script"), ("lit_mnist fit", "plain script"),
                            ("lit_mnist fit", "bare Lightning loop")):  # fmt: skip
        pairs = ", ".join(f"{run[0] / base[0]:.3f}" for run, base in zip(runs[name], runs[reference]))
        print(f"    wall time {name} / {reference} = {wall[name] / wall[reference]:.3f} (rounds: {pairs})")
    print(f"    peak memory lit_mnist fit / plain script = {mib['lit_mnist fit'] / mib['plain script']:.3f}")
    print(f"event files of the seed run: {runs['lit_mnist fit'][-1][2]:.1f} MiB")
    # The same commands for one step: what each costs besides its steps (start-up, test pass, exit).
    one_step_options = {"plain script": ["--steps", "1"], "bare Lightning loop": ["--steps", "1"],
                        "lit_mnist fit": ["--trainer.max_steps", "1"]}  # fmt: skip
    one_step = in_turn([[*command, *one_step_options[name]] for name, command in commands.items()], args.whole_rounds)
    seconds = [
        f"{name} {statistics.median(run[0] for run in figures):.1f} s" for name, figures in zip(commands, one_step)
    ]
    print(f"one step (median of {args.whole_rounds}): {', '.join(seconds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=1100)
    parser.add_argument("--naive-steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (a) to (e); 0 skips them")
    parser.add_argument("--whole-rounds", type=int, default=3, help="runs of each whole command, alternating")
    parser.add_argument("--skip-whole", action="store_true", help="skip the whole-command comparison")
    args = parser.parse_args()
    data_dir = str(Path(args.data_dir).resolve())

    print(
        f"torch {torch.__version__}, lightning {pl.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores"
    )
    if args.rounds:
        compare_steps(data_dir, args)
    if not args.skip_whole:
        compare_whole(data_dir, args)


if __name__ == "__main__":
    main()
