"""Callbacks that the CLI adds to every run."""

import hashlib
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from torch import Tensor


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s random stream in a run seeded with ``seed``; process 0 keeps the run's seed."""
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"lit_mnist/{seed}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch takes seeds below 2**63


def reached_max_steps(trainer: Trainer) -> bool:
    """Whether the step just taken is the run's last by --trainer.max_steps (-1 sets no limit)."""
    return 0 < trainer.max_steps <= trainer.global_step


class RNGStateCheckpoint(Callback):
    """Gives every training process its own random stream and keeps all of them in each checkpoint.

    Lightning seeds every process alike, so under DDP each would draw the same dropout masks and distortions for its
    share of the batch. At the start of training, process r reseeds torch with ``process_seed(seed, r)``: a
    single-process run is unchanged, and each of several processes draws its own numbers.

    Lightning restores the model, optimizer, schedulers, loops and the data's position, but not the RNGs. Each
    checkpoint holds the states of all processes (gathered from every one, since only process 0 writes the file), and
    on resume each process gets its own back at the start of training, after everything that resuming does and before
    the first batch. Only torch's generators are kept (tensors load with ``weights_only``); nothing here draws from
    Python's or NumPy's.
    """

    def __init__(self) -> None:
        self._trainer: Optional[Trainer] = None
        self._states_to_restore: Optional[dict[str, Tensor]] = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        # Lightning builds the checkpoint on every process, so the gather below is a collective all of them reach.
        states = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state()
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
            return {name: state[None] for name, state in states.items()}  # one row per process
        return {name: self._gather(state, trainer.strategy.root_device) for name, state in states.items()}

    @staticmethod
    def _gather(state: Tensor, device: torch.device) -> Tensor:
        """Every process's copy of ``state``, one row each; through the model's device, as NCCL moves GPU tensors."""
        state = state.to(device)
        rows = [torch.empty_like(state) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(rows, state)
        return torch.stack(rows).cpu()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._states_to_restore = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        states, self._states_to_restore = self._states_to_restore, None
        rank = trainer.global_rank
        if states is None or len(states["torch"]) != trainer.world_size:
            # A new run (or one resumed on another number of processes, whose streams cannot be continued).
            if rank > 0:
                torch.manual_seed(process_seed(torch.initial_seed(), rank))
            return
        # A copy, not a row view: torch 2.14's set_rng_state reads a view's storage from its start (and crashes).
        torch.set_rng_state(states["torch"][rank].clone())
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state(states["cuda"][rank].clone())


def last_checkpoint_path(trainer: Trainer) -> Optional[Path]:
    """Where the run keeps its ``last.ckpt`` (which may not exist yet); None in a run without checkpointing."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or checkpoint.dirpath is None:
        return None
    return Path(checkpoint.dirpath) / "last.ckpt"


def save_last_checkpoint(trainer: Trainer) -> Optional[Path]:
    """Writes the run's ``checkpoints/last.ckpt`` at the current step (with everything an exact resume needs) and
    returns its path; None in a run without checkpointing."""
    path = last_checkpoint_path(trainer)
    if path is not None:
        trainer.save_checkpoint(path, weights_only=False)
    return path


class FinalValidation(Callback):
    """Validates after the final training step when that step falls inside an epoch.

    Lightning validates at the end of each epoch, so a run of --trainer.max_steps that stops mid-epoch would end with
    no figures for its final weights (and a run shorter than an epoch with no best checkpoint). Asking the Trainer to
    stop at that step is Lightning's own way to have it validate before it ends.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if reached_max_steps(trainer):
            trainer.should_stop = True


class FinalCheckpoint(Callback):
    """Saves ``last.ckpt`` when training ends, so that it holds the network the run ended with.

    Lightning's ModelCheckpoint refreshes ``last.ckpt`` only beside a new best checkpoint and every N steps
    (--last_checkpoint), so a run whose last validation was not its best would end with it up to N steps behind, and
    test, export or serve on it would not see the network that fit reported on.
    """

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        save_last_checkpoint(trainer)


class RunSummary(Callback):
    """Prints the network's layers and parameter count, and the run's folder, as training starts."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run_folder = trainer.log_dir if trainer.logger is not None else None  # a collective: every process asks
        if not trainer.is_global_zero:
            return
        layers = []
        for name, module in pl_module.network.named_children():
            if isinstance(module, torch.nn.Linear):
                layers.append(f"{name} {module.in_features}x{module.out_features}")
            else:
                layers.append(name)
        parameters = sum(parameter.numel() for parameter in pl_module.parameters())
        print(f"Network: {', '.join(layers)}: {parameters:,} parameters")
        if run_folder is not None:
            print(f"Run folder: {Path(run_folder)}")


class LineEndingProgressBar(TQDMProgressBar):
    """Lightning's progress bar, which ends its line when a run stops on an error (a diverged loss, Ctrl-C, a full
    disk), so that in a terminal the error starts on a line of its own rather than after the bar."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero and self.is_enabled:
            print(flush=True)  # the bar's stream is stdout
