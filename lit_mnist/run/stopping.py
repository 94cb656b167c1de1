"""How a run ends before its last step: at a diverging loss, or on Ctrl-C (SIGINT) and SIGTERM with its state kept."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lit_mnist.run.callbacks import last_checkpoint_path, save_last_checkpoint
from lit_mnist.run.errors import TrainingDiverged, TrainingStopped


def finite_weights(module: torch.nn.Module) -> bool:
    """Whether every parameter of the module is a finite number, with one synchronisation with its device."""
    parameters = list(module.parameters())
    if not parameters:
        return True
    # A NaN or an infinity makes its tensor's sum NaN or infinite, so finite sums mean finite weights: one reduction
    # per tensor, 0.2 ms for the post's network against 1.9 ms for an isfinite mask of every weight. Finite weights
    # can still add up past float32's range; the mask decides then.
    sums = torch.stack([parameter.sum(dtype=torch.float32) for parameter in parameters])
    return bool(sums.isfinite().all()) or all(bool(parameter.isfinite().all()) for parameter in parameters)


class DivergenceCheck(Callback):
    """Ends the run when the training loss becomes NaN or infinite, and keeps such weights out of every checkpoint.

    The loss is looked at once per logging interval (the step's loss, on the device: one synchronisation per
    interval, which the logged figures cost anyway). Once the weights are NaN every later loss is too, so the
    interval's last step tells. Between two looks, each checkpoint save first checks that the weights are finite, so
    ``last.ckpt`` always holds the last finite state that was saved. Lightning's ``EarlyStopping(check_finite=True)``
    looks only at the end of an epoch or a validation, and lets the test pass run.

    Args:
        stop: End the run at a NaN or infinite training loss; false trains on, to watch a divergence.
    """

    def __init__(self, stop: bool = True) -> None:
        self.stop = stop
        self._loss: Optional[torch.Tensor] = None  # the latest step's, still on its device

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._loss = loss
        if not self.stop or loss is None or trainer.global_step % trainer.log_every_n_steps:
            return
        finite = bool(torch.isfinite(loss).all())
        # Every process stops at the same step, or the others would wait for it forever.
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            self._diverged(trainer, pl_module, f"the training loss is {float(loss):g}")

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.stop and not finite_weights(pl_module):
            last = f" after a training loss of {float(self._loss):g}" if self._loss is not None else ""
            self._diverged(trainer, pl_module, f"the weights are no longer finite numbers{last}")

    @staticmethod
    def _diverged(trainer: Trainer, pl_module: LightningModule, what: str) -> None:
        learning_rate = pl_module.hparams.get("learning_rate")
        advice = (
            f"try a lower --model.learning_rate than {learning_rate:g} (say {learning_rate / 10:g})"
            if learning_rate
            else "try a lower --model.learning_rate"
        )
        saved = _saved_last_checkpoint(trainer)
        kept = f"{saved[0]} holds step {saved[1]}, the last state saved" if saved else "no checkpoint was saved before"
        raise TrainingDiverged(
            f"training diverged at step {trainer.global_step}: {what}; {advice}, or --divergence.stop false to "
            f"watch it go on; {kept}"
        )


def _resumed_from(trainer: Trainer) -> Optional[Path]:
    """Before the first step: the checkpoint the run continues from holds its state (None for a new run)."""
    return Path(trainer.ckpt_path) if trainer.ckpt_path is not None else None


def _saved_last_checkpoint(trainer: Trainer) -> Optional[tuple[Path, int]]:
    """The run's last.ckpt and the step it holds, if one was saved."""
    path = last_checkpoint_path(trainer)
    if path is None or not path.is_file():
        return None
    return path, torch.load(path, map_location="cpu", weights_only=True)["global_step"]


class SignalStop(Callback):
    """Makes Ctrl-C (SIGINT) and SIGTERM stop training at the end of the step under way, with ``last.ckpt`` saved at
    that step, so that ``--ckpt_path`` on it goes on exactly as if nothing had happened.

    ``signals_stop_training`` hands it the signals for the whole of ``trainer.fit``: one that comes before the first
    step (the data's setup, the sanity check) ends the run at once, with nothing to save. During training its own
    handlers stand in front of Lightning's, whose SIGTERM handling would cut a validation short between two steps. A
    second signal while the step ends and the checkpoint is written changes nothing (the write is atomic anyway).
    Under several processes Lightning's own SIGTERM handling applies, and its SIGUSR1 handler for SLURM's
    auto-requeue is never touched.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._received: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def receive(self, number: int, frame: Optional[FrameType]) -> None:
        """The signal handler: it only remembers the first signal; the hooks below act on it."""
        if self._received is None:
            self._received = number

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if self._received is not None and trainer.sanity_checking:
            self._stop(trainer, _resumed_from(trainer))

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._received is not None:
            self._stop(trainer, _resumed_from(trainer))
        if _handles_signals(trainer):
            self._previous = self._install()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._received is not None:
            self._stop(trainer, save_last_checkpoint(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._received is not None:  # during the last validation: last.ckpt already holds the final step
            self._stop_at_last_saved(trainer)
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _stop(self, trainer: Trainer, checkpoint: Optional[Path]) -> None:
        """End the run: ``checkpoint`` holds the step reached (None: nothing was saved)."""
        number, self._received = self._received, None
        self._restore()
        raise TrainingStopped(signal.Signals(number).name, trainer.global_step, checkpoint, number)

    def _stop_at_last_saved(self, trainer: Trainer) -> None:
        """End the run with nothing more to save: the run's last.ckpt, if one was written, holds where it got to."""
        path = last_checkpoint_path(trainer)
        self._stop(trainer, path if path is not None and path.is_file() else None)

    def _install(self) -> dict[int, Any]:
        """Put ``receive`` in place for each of SIGNALS; returns the handlers it replaced."""
        return {number: signal.signal(number, self.receive) for number in self.SIGNALS}

    def _restore(self) -> None:
        _put_back(self._previous)
        self._previous = {}

    @contextmanager
    def receiving(self, trainer: Trainer) -> Iterator[None]:
        """The handlers in place for the whole block, from a fresh start; the caller's are back afterwards.

        A signal that no hook acted on, because the run ended first (a pruned trial, the moments after the last
        validation), still stops it here, instead of being lost.
        """
        self._received = None
        previous = self._install()
        try:
            yield
        finally:
            _put_back(previous)
            if self._received is not None:
                self._stop_at_last_saved(trainer)


def _handles_signals(trainer: Trainer) -> bool:
    """Signal handlers belong to the main thread; under several processes Lightning's own SIGTERM handling applies."""
    return trainer.world_size == 1 and threading.current_thread() is threading.main_thread()


def _put_back(handlers: dict[int, Any]) -> None:
    for number, handler in handlers.items():
        signal.signal(number, handler)


@contextmanager
def signals_stop_training(trainer: Trainer) -> Iterator[None]:
    """Ctrl-C and SIGTERM go to the trainer's ``SignalStop`` while the block runs ``trainer.fit``.

    Around fit rather than in one of its hooks, so that the signals are caught from fit's first moment, and so that
    Lightning's own SIGTERM handler, which fit puts in place after its setup and takes away when it ends (on an
    exception too), nests inside these handlers: after the block the caller's are back.
    """
    stop = next((callback for callback in trainer.callbacks if isinstance(callback, SignalStop)), None)
    if stop is None or not _handles_signals(trainer):
        yield
        return
    with stop.receiving(trainer):
        yield
