"""Callbacks that tests add to real CLI runs with ``--trainer.callbacks+=tests.helpers.NAME``."""

import atexit
import os
import signal
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback


class KillAtStep(Callback):
    """Kills its own process with SIGKILL once training reaches ``step``: a crash at a chosen moment, no cleanup.

    Under DDP every process runs it and dies at the same step, as a machine that loses power would.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class RecordRNGState(Callback):
    """Saves each process's torch RNG state as its first training batch starts, to ``rng-rank{R}.pt`` here.

    Augmentation and dropout draw from that state, so two processes with equal states draw equal distortions and masks.
    """

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == 0:
            torch.save(torch.get_rng_state(), Path(f"rng-rank{trainer.global_rank}.pt"))


class SignalAtStep(Callback):
    """Sends its own process ``signal_name`` as the training batch after ``step`` begins: a Ctrl-C or a cluster's
    SIGTERM arriving mid-step. With ``again_while_saving``, it sends the signal once more while the checkpoint that
    the first one causes is being written, as an impatient second Ctrl-C would.
    """

    def __init__(self, step: int, signal_name: str = "SIGINT", again_while_saving: bool = False) -> None:
        self.step, self.number, self.again_while_saving = step, signal.Signals[signal_name], again_while_saving
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.number)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self.sent and self.again_while_saving:
            os.kill(os.getpid(), self.number)


class SignalAtTestBatch(Callback):
    """Sends its own process ``signal_name`` as the test pass's first batch starts, after training has ended."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        self.number = signal.Signals[signal_name]

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0:
            os.kill(os.getpid(), self.number)


class SignalBeforeTraining(Callback):
    """Sends its own process ``signal_name`` before the first training step: as fit sets up (``moment`` "setup"), or
    during the sanity check's validation ("sanity_check")."""

    def __init__(self, moment: str = "setup", signal_name: str = "SIGINT") -> None:
        self.moment, self.number = moment, signal.Signals[signal_name]
        self.sent = False

    def _send(self) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.number)

    def setup(self, trainer, pl_module, stage) -> None:
        if self.moment == "setup":
            self._send()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.moment == "sanity_check" and trainer.sanity_checking:
            self._send()


class PrunedAfterASignal(Callback):
    """Sends its own process ``signal_name`` as the first validation ends and prunes the trial at once: the signal
    comes in the moment before Optuna's pruner stops the trial, with no training step left to act on it."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        self.number = signal.Signals[signal_name]

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            import optuna

            os.kill(os.getpid(), self.number)
            raise optuna.TrialPruned()


class WaitForWorkers(Callback):
    """Holds each sweep worker's first trial as its training starts until ``workers`` workers have got that far
    (each leaves a file in ``folder``), so that a worker that starts late still finds trials to run."""

    def __init__(self, folder: str, workers: int = 2, timeout: float = 120) -> None:
        self.folder, self.workers, self.timeout = Path(folder), workers, timeout

    def on_train_start(self, trainer, pl_module) -> None:
        started = self.folder / f"started-{os.getpid()}"
        if not started.exists():  # each worker's first trial: the threads it trains with
            started.write_text(f"threads {torch.get_num_threads()}")
        deadline = time.monotonic() + self.timeout
        while len(list(self.folder.glob("started-*"))) < self.workers:
            assert time.monotonic() < deadline, f"the other workers did not start within {self.timeout} s"
            time.sleep(0.05)


class ProcessGroupAtExit(Callback):
    """Prints, as its process exits, whether the distributed process group was still alive then (torch asks each
    process to destroy it before exit: a gloo group left to the interpreter's teardown can abort or hang it)."""

    def __init__(self) -> None:
        atexit.register(self.report)

    @staticmethod
    def report() -> None:
        print(f"process group alive at exit: {torch.distributed.is_initialized()}", flush=True)
