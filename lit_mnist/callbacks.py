"""Callbacks that the CLI adds to every run."""

from typing import Any

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class RNGStateCheckpoint(Callback):
    """Saves torch's random number generator states in each checkpoint and restores them on resume.

    Lightning restores the model, optimizer, schedulers, loops and the data's position, but not the RNGs, so dropout
    and augmentation would draw different numbers after a resume than the uninterrupted run. The states are put back
    at the start of training, after everything that resuming does and before the first batch. Only torch's
    generators are kept (tensors load with ``weights_only``); nothing here draws from Python's or NumPy's.
    """

    def __init__(self) -> None:
        self._states_to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        states: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        return states

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._states_to_restore = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        states, self._states_to_restore = self._states_to_restore, None
        if states is None:
            return
        torch.set_rng_state(states["torch"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])


class PeriodicLastCheckpoint(ModelCheckpoint):
    """Refreshes the run's ``checkpoints/last.ckpt`` every few training steps, so a crash loses at most that many.

    The run's main checkpoint callback saves the best and the last model after each validation; this one adds the
    saves between validations. Both write the same ``last.ckpt``, overwriting it in place.

    Args:
        every_n_train_steps: Training steps between two saves of last.ckpt.
    """

    def __init__(self, every_n_train_steps: PositiveInt = 500) -> None:
        super().__init__(
            save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps, enable_version_counter=False
        )
