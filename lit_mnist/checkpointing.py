"""Checkpoint files that are either complete or absent, whatever kills the process or fills the disk."""

import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from lit_mnist.errors import WriteFailed, os_error_of


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
