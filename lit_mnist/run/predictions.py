"""Predictions on the user's pictures, printed one line per file and written to a CSV file if asked for."""

import csv
import sys
import warnings
from pathlib import Path
from typing import IO, Any, Optional

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

# Lightning looks for the indices of each batch's samples in a DataLoader's sampler, and warns when it finds no
# DataLoader: predict's batches carry each picture's index themselves, so there is nothing for it to find.
warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched from your dataloader")

NORMAL_INIT_NOTE = (
    "note: this network's weights were drawn from N(0, 1), as the post's are: its logits run into the thousands, so "
    "each probability is 0% or 100% and says which digit, not how sure; --model.init kaiming trains a network whose "
    "probabilities do"
)


class PredictionWriter(BasePredictionWriter):
    """Prints ``FILE: DIGIT (PROBABILITY)`` for each picture as its batch is predicted, and the same as CSV rows.

    Batch by batch, so that nothing piles up however many pictures there are. Process 0 writes; pictures that could
    not be read get their ``error:`` line on stderr at the end.

    Args:
        output: The CSV file (columns file, digit, probability), created here: it must not exist yet.
    """

    def __init__(self, output: Optional[Path] = None) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self._file: Optional[IO[str]] = None

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.output is not None and trainer.is_global_zero:
            self._file = open(self.output, "x", newline="")
            csv.writer(self._file).writerow(["file", "digit", "probability"])

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Optional[Any],
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not trainer.is_global_zero:
            return
        indices, probabilities = prediction
        best, digits = probabilities.max(dim=1)
        files = trainer.datamodule.predict_files
        rows = [(str(files[i]), d, p) for i, d, p in zip(indices.tolist(), digits.tolist(), best.tolist())]
        for file, digit, probability in rows:
            print(f"{file}: {digit} ({probability:.1%})")
        if self._file is not None:
            csv.writer(self._file).writerows((file, digit, f"{probability:.6f}") for file, digit, probability in rows)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()
        if trainer.is_global_zero and pl_module.hparams.get("init") == "normal":
            print(NORMAL_INIT_NOTE)
        if trainer.is_global_zero:
            for file, reason in trainer.datamodule.unreadable:
                sys.stderr.write(f"error: {file}: {reason}; skipped\n")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
