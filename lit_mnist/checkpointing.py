"""Checkpoint files that are either complete or absent, whatever kills the process."""

import os
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, then renames it over the target.

    A rename within one folder is atomic, so a crash mid-write leaves the previous ``last.ckpt`` intact. Lightning's
    own save stages the file in the system's temporary folder, which may be another file system, where the final move
    is a copy that a crash can cut short.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
