"""Checkpoint files: written so that they are either complete or absent, whatever kills the process or fills the
disk, and read without running pickled code, each way a file can be wrong said in one line."""

import inspect
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from lit_mnist.data import MNISTDataModule
from lit_mnist.run.errors import UserError, WriteFailed, os_error_of


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, then renames it over the target.

    A rename within one folder is atomic, so a crash mid-write leaves the previous ``last.ckpt`` intact. Lightning's
    own save stages the file in the system's temporary folder, which may be another file system, where the final move
    is a copy that a crash can cut short. A write that fails (a full disk, a file-size limit) or is interrupted
    removes its temporary file and leaves the previous checkpoint as it was.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with partial.open("wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException as error:
            partial.unlink(missing_ok=True)
            cause = os_error_of(error)
            if cause is not None:
                raise WriteFailed(f"cannot write the checkpoint {path}: {cause.strerror or cause}") from None
            raise


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint without running pickled code, turning every way it can be wrong into a UserError."""
    if not Path(path).is_file():
        raise UserError(f"--ckpt_path {path}: no such file; give the path of a .ckpt file (or 'last' with fit)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it is about to refuse: the error below says it all.
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"--ckpt_path {path} is not a readable PyTorch checkpoint: it holds objects other than tensors and plain "
            "data, which could run code when loaded, so it was not loaded"
        ) from None
    except Exception as error:  # a truncated or foreign file: zip, pickle and EOF errors have no common base class
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"--ckpt_path {path} is not a readable PyTorch checkpoint ({reason[:160]})") from None
    if not isinstance(checkpoint, dict) or not any(
        key.startswith("network.") for key in checkpoint.get("state_dict", {})
    ):
        raise UserError(f"--ckpt_path {path} is not a lit_mnist checkpoint (no network weights in it)")
    return checkpoint


def with_data_options(command_line: list[str], subcommand: str, checkpoint: dict[str, Any]) -> list[str]:
    """The command line with the data module's settings saved in the checkpoint put first after the subcommand, so
    that every option or --config given wins over them (not the pictures to predict)."""
    saved = checkpoint.get(MNISTDataModule.CHECKPOINT_HYPER_PARAMS_KEY) or {}
    known = inspect.signature(MNISTDataModule).parameters
    options = []
    for name, value in saved.items():
        if name in known and name != "predict_path" and value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            options.append(f"--data.{name}={text}")
    position = command_line.index(subcommand) + 1
    return [*command_line[:position], *options, *command_line[position:]]
