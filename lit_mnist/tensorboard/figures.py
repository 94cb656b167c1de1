"""The test pass's pictures for TensorBoard: the confusion matrix and the misclassified digits, and the callback
that draws them.

TensorBoard shows an image scaled to its card, about 350 pixels wide by default, so both are drawn to be read at that
size: few, large digits with short captions, and counts set in cells wide enough for four digits. Each is a
matplotlib ``Figure`` of its own rather than pyplot's, so drawing never switches the backend of a notebook.
"""

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from lit_mnist.data.mnist_files import NUM_CLASSES

# How wide TensorBoard draws an image card by default, in pixels; the figures are sized to be read there.
CARD_WIDTH = 350
DPI = 100
# The misclassified digits' grid, in inches: a cell per digit, its caption above it, the figure's title above them.
CELL_WIDTH, CELL_HEIGHT, TITLE_BAND = 1.0, 1.25, 0.5
DIGIT_SIZE, CAPTION_HEIGHT, CAPTION_GAP = 0.83, 0.3, 0.08
# LAYOUT_NOTE: the figures' margins are the ones matplotlib's tight_layout found for them, written out: their sizes and
# fonts are fixed, and tight_layout took a third of a second of every test pass to find the same numbers again.


def confusion_matrix_figure(matrix: Tensor) -> Figure:
    """The (classes x classes) confusion matrix, true label by row and predicted by column, with every count shown.

    Drawn here rather than by torchmetrics' ``MulticlassConfusionMatrix.plot``, which colours cells by count (the
    diagonal's thousands drown the mistakes) and sets four-digit counts wider than their cells at this size.

    Colours are shares of each true class, so the diagonal is dark and the mistakes stand out however the classes
    are sized.
    """
    counts = matrix.cpu().long()
    shares = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    classes = counts.shape[0]
    figure = Figure(figsize=(5.2, 5.6), dpi=DPI)
    axes = figure.add_subplot()
    axes.imshow(shares.numpy(), cmap="Blues", vmin=0, vmax=1)
    for true in range(classes):
        for predicted in range(classes):
            dark = shares[true, predicted] > 0.5
            axes.text(predicted, true, str(int(counts[true, predicted])), ha="center", va="center", fontsize=10,
                      color="white" if dark else "black")  # fmt: skip
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    axes.tick_params(labelsize=11)
    axes.set_xlabel("predicted", fontsize=12)
    axes.set_ylabel("true", fontsize=12)
    axes.set_title(f"{int(counts.sum())} test digits, {int(counts.sum() - counts.trace())} wrong", fontsize=13)
    figure.subplots_adjust(left=0.11, right=0.97, bottom=0.087, top=0.96)  # tight_layout's, fixed: see LAYOUT_NOTE
    return figure


def misclassified_figure(digits: list[tuple[Tensor, int, int]], errors: int, total: int, columns: int = 6) -> Figure:
    """A grid of misclassified digits (image, predicted, true), each captioned ``predicted (true)``.

    The digits and captions are placed in one axes that spans the figure, in inches from its top left corner: a
    subplot for each digit made this picture take a third of a second to set up and draw, most of it spent on the
    ticks and title positions of two dozen axes that show neither.
    """
    rows = max(1, math.ceil(len(digits) / columns))
    width, height = columns * CELL_WIDTH, rows * CELL_HEIGHT + TITLE_BAND
    figure = Figure(figsize=(width, height), dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.axis("off")
    for index, (image, predicted, true) in enumerate(digits):
        row, column = divmod(index, columns)
        left = column * CELL_WIDTH + (CELL_WIDTH - DIGIT_SIZE) / 2
        top = TITLE_BAND + row * CELL_HEIGHT + CAPTION_HEIGHT
        axes.imshow(image.float().numpy(), cmap="gray", extent=(left, left + DIGIT_SIZE, top + DIGIT_SIZE, top))
        axes.text(left + DIGIT_SIZE / 2, top - CAPTION_GAP, f"{predicted} ({true})", ha="center", va="bottom",
                  fontsize=15)  # fmt: skip
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_aspect("auto")  # data units are inches of the figure, whatever its shape
    figure.suptitle(f"{errors} of {total} wrong: predicted (true)", fontsize=14)
    return figure


class TestFigures(Callback):
    """After each test pass, draws into TensorBoard's IMAGES tab the confusion matrix of the test set and a grid of
    misclassified test digits, each titled with its predicted and true labels.

    Works with any logger whose ``experiment`` has TensorBoard's ``add_figure``; other loggers get no figures.

    Args:
        max_misclassified: How many misclassified digits the grid shows (the first ones in test-set order).
    """

    def __init__(self, max_misclassified: int = 24) -> None:
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
        predictions = outputs.argmax(dim=1)  # test_step returns the logits
        self.confusion.update(predictions, labels)
        if len(self.misclassified) < self.max_misclassified:  # stops copying to the CPU once the grid is full
            wrong = (predictions != labels).nonzero().flatten()[: self.max_misclassified - len(self.misclassified)]
            pictures, predicted, true = images[wrong].cpu(), predictions[wrong].tolist(), labels[wrong].tolist()
            self.misclassified.extend(zip(pictures[:, 0], predicted, true))

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = self.confusion.compute()  # sums over processes, so every process takes part
        experiment = getattr(trainer.logger, "experiment", None)
        if not trainer.is_global_zero or not hasattr(experiment, "add_figure"):
            return
        step, total = trainer.global_step, int(matrix.sum())
        errors = total - int(matrix.trace())
        experiment.add_figure("test/confusion_matrix", confusion_matrix_figure(matrix), step)
        experiment.add_figure("test/misclassified", misclassified_figure(self.misclassified, errors, total), step)
        experiment.flush()
