"""Python bytecodes per training step of (d) the bare Lightning loop and (b) lit_mnist's fit, by where they run.

    python benchmarks/python_work.py --data-dir ../shared/data

instructions.py counts all of a step's work but cannot say which Python function it was for, and (b)'s extra work
over (d) is mostly Python. This runs (d) and then (b) in this process with a trace function (sys.settrace with
opcode events) that counts the bytecodes each training step executes and files them under the part of the step they
belong to: the model's or the data module's hooks, each callback's hooks, Lightning's dispatch of those hooks, its
refresh of logged results, and the rest of its loop with PyTorch's Python. The counts are the same on every run and
machine with the same package versions (but for a few hundred at an interval's end, where TensorBoard's writer thread
takes its turns), and the script takes seconds. Each step counts from its batch's start to the next's; steps
--start + 1 to --start + --steps are counted (the default 50 hold one logging interval of (b)), split into the steps
between logging intervals and the steps that end one. Only this thread is traced: TensorBoard's writer thread, which
writes (b)'s event files, is not counted. Bytecodes are not time: one may be a list append or a call into MKL; this
shows where the interpreter's work of instructions.py's count goes, not the matrix products'. It also counts the
`Tensor.item()` calls of each step: on a GPU each one waits for the device to finish its queue.
"""

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path
from types import FrameType
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import lightning.pytorch as pl  # noqa: E402
import throughput  # noqa: E402
import torch  # noqa: E402

LOOP = "Lightning's loop, PyTorch's Python"
CALLBACK_DISPATCH = "Lightning: calling the callbacks' hooks"
# Lightning functions whose work, and what they call that is not a hook of the run's own objects, is filed under a
# name of its own.
DISPATCH = {
    "_call_callback_hooks": CALLBACK_DISPATCH,
    "_call_batch_hook": "Lightning: calling the batch transfer hooks",
    "on_batch_end": "Lightning: refresh of logged results",  # its logger connector's, after every batch
    "update_train_step_metrics": "Lightning: writing logged results",
}
HOOK_BODIES = ("model ", "data module ", "callback ")


def classify(frame: FrameType, parent: Optional[str]) -> str:
    """The part of the step a new frame belongs to, given its caller's: a hook's body keeps all it calls."""
    if parent is not None and parent.startswith(HOOK_BODIES):
        return parent
    code = frame.f_code
    owner = frame.f_locals.get("self") if code.co_argcount else None
    if isinstance(owner, pl.Callback) and parent == CALLBACK_DISPATCH:
        return f"callback {type(owner).__name__}"
    # The model's and data module's own methods (not Lightning's defaults): the run's code.
    if isinstance(owner, (pl.LightningModule, pl.LightningDataModule)) and "site-packages" not in code.co_filename:
        kind = "model" if isinstance(owner, pl.LightningModule) else "data module"
        return f"{kind} {code.co_name}"
    if code.co_name in DISPATCH and "lightning" in code.co_filename:
        return DISPATCH[code.co_name]
    return parent or LOOP


class StepCounter(pl.Callback):
    """Counts the bytecodes of each training step from batch start to batch start, by part, in this thread."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.bytecodes: dict[int, Counter] = defaultdict(Counter)  # step (1-based) -> part -> bytecodes
        self.items: dict[str, Counter] = defaultdict(Counter)  # device type -> step -> Tensor.item() calls
        self._parts: dict[int, str] = {}  # id of a live frame -> its part
        self._step = 0
        self.log_every = 0  # the run's logging interval

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.log_every = trainer.log_every_n_steps
        if trainer.global_step == self.start:
            self._begin()
        elif trainer.global_step == self.stop:
            sys.settrace(None)
            sys.setprofile(None)
            for frame in self._stack():
                frame.f_trace = None
        self._step = trainer.global_step + 1

    def _stack(self) -> list[FrameType]:
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        return frames

    def _begin(self) -> None:
        # The frames already running (the fit loop's) are counted as Lightning's loop from here on.
        for frame in self._stack():
            self._parts[id(frame)] = LOOP
            frame.f_trace, frame.f_trace_opcodes = self._local, True
        sys.settrace(self._call)
        sys.setprofile(self._profile)

    def _call(self, frame: FrameType, event: str, arg) -> object:
        self._parts[id(frame)] = classify(frame, self._parts.get(id(frame.f_back)) if frame.f_back else None)
        frame.f_trace_opcodes = True
        return self._local

    def _local(self, frame: FrameType, event: str, arg) -> object:
        if event == "opcode":
            self.bytecodes[self._step][self._parts.get(id(frame), LOOP)] += 1
        elif event == "return":
            self._parts.pop(id(frame), None)
        return self._local

    def _profile(self, frame: FrameType, event: str, arg) -> None:
        if event == "c_call" and getattr(arg, "__name__", None) == "item":
            tensor = getattr(arg, "__self__", None)
            if isinstance(tensor, torch.Tensor):
                self.items[tensor.device.type][self._step] += 1


def count(run: str, data_dir: str, start: int, steps: int) -> StepCounter:
    counter = StepCounter(start, start + steps)
    with throughput.in_temporary_folder():
        throughput.train_watched(run, data_dir, start + steps + 1, counter)
    counter.bytecodes = {step: parts for step, parts in counter.bytecodes.items() if start < step <= start + steps}
    return counter


def per_step(counter: StepCounter, steps: list[int]) -> Counter:
    total = Counter()
    for step in steps:
        total.update(counter.bytecodes.get(step, Counter()))
    return Counter({part: value / len(steps) for part, value in total.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--start", type=int, default=50, help="steps before counting starts")
    parser.add_argument("--steps", type=int, default=50, help="steps counted")
    args = parser.parse_args()
    if args.start < 1 or args.steps < 1:
        parser.error("--start and --steps must be at least 1")
    if not (Path(args.data_dir) / "MNIST" / "raw").is_dir():
        parser.error(f"--data-dir {args.data_dir}: no MNIST/raw folder there (give the folder that holds MNIST/)")

    data_dir = str(Path(args.data_dir).resolve())  # the runs go in temporary folders
    bare = count("bare", data_dir, args.start, args.steps)
    fit = count("fit", data_dir, args.start, args.steps)
    counted = list(range(args.start + 1, args.start + args.steps + 1))
    between = [step for step in counted if step % fit.log_every]
    ends = [step for step in counted if not step % fit.log_every]
    columns = [("(d) per step", bare, counted), ("(b) per step", fit, counted)]
    columns += [("(b) between intervals", fit, between)] if between else []
    columns += [("(b) interval's end", fit, ends)] if ends else []
    report(columns, counted)


def report(columns: list[tuple[str, StepCounter, list[int]]], counted: list[int]) -> None:
    """One row per part of the step, one column per run and kind of step (means over those steps)."""
    means = [per_step(counter, steps) for _, counter, steps in columns]
    for mean in means:
        mean.pop("callback StepCounter", None)  # this script's own
    parts = sorted(set().union(*means), key=lambda part: -means[1][part])
    rows = [(part, [mean[part] for mean in means], "{:.0f}") for part in parts]
    rows.append(("all", [sum(mean.values()) for mean in means], "{:.0f}"))
    for device in sorted(set().union(*(counter.items for _, counter, _ in columns))):
        calls = [sum(counter.items[device][step] for step in steps) / len(steps) for _, counter, steps in columns]
        rows.append((f"Tensor.item() calls, {device} tensors", calls, "{:.1f}"))
    width = max(len(name) for name, _, _ in rows)
    print(f"Python bytecodes per training step, steps {counted[0]} to {counted[-1]} (this thread):")
    print(" " * width + "".join(f"{title:>24}" for title, _, _ in columns))
    for name, values, form in rows:
        print(f"{name:<{width}}" + "".join(f"{form.format(value):>24}" for value in values))


if __name__ == "__main__":
    main()
