"""Callbacks that the CLI adds to every run."""

import math
from typing import Any

import matplotlib
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from lit_mnist.model import NUM_CLASSES

matplotlib.use("Agg")  # figures are only ever drawn into TensorBoard, also where no display exists


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


class TestFigures(Callback):
    """After each test pass, draws into TensorBoard's IMAGES tab the confusion matrix of the test set and a grid of
    misclassified test digits, each titled with its predicted and true labels.

    Works with any logger whose ``experiment`` has TensorBoard's ``add_figure``; other loggers get no figures.

    Args:
        max_misclassified: How many misclassified digits the grid shows (the first ones in test-set order).
    """

    def __init__(self, max_misclassified: int = 64) -> None:
        self.max_misclassified = max_misclassified

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.confusion = MulticlassConfusionMatrix(NUM_CLASSES).to(pl_module.device)
        self.misclassified: list[tuple[Tensor, int, int]] = []

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        images, labels = batch
        self.confusion.update(outputs, labels)
        if len(self.misclassified) < self.max_misclassified:  # stops copying to the CPU once the grid is full
            wrong = (outputs != labels).nonzero().flatten()[: self.max_misclassified - len(self.misclassified)]
            for image, predicted, true in zip(images[wrong].cpu(), outputs[wrong].tolist(), labels[wrong].tolist()):
                self.misclassified.append((image[0], predicted, true))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = self.confusion.compute()  # sums over processes, so every process takes part
        experiment = getattr(trainer.logger, "experiment", None)
        if not trainer.is_global_zero or not hasattr(experiment, "add_figure"):
            return
        step, total = trainer.global_step, int(matrix.sum())
        figure, axes = self.confusion.plot(matrix)
        axes.set_title(f"Test set: {total} digits, true label by row, predicted by column")
        experiment.add_figure("test/confusion_matrix", figure, step)
        errors = total - int(matrix.trace())
        experiment.add_figure("test/misclassified", self._misclassified_grid(errors, total), step)
        experiment.flush()

    def _misclassified_grid(self, errors: int, total: int) -> Figure:
        columns = 8
        rows = max(1, math.ceil(len(self.misclassified) / columns))
        figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3 + 0.6), squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for axis, (image, predicted, true) in zip(axes.flat, self.misclassified):
            axis.imshow(image.float().numpy(), cmap="gray")
            axis.set_title(f"{predicted} (true {true})", fontsize=8)
        shown = f"the first {len(self.misclassified)}" if len(self.misclassified) < errors else "all"
        figure.suptitle(f"{errors} of {total} test digits misclassified ({shown} shown): predicted (true)", fontsize=9)
        figure.tight_layout()
        return figure
