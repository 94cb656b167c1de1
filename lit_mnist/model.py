"""The post's fully connected network as a LightningModule."""

from collections import OrderedDict
from typing import Any, Literal

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_mnist.data.mnist_files import IMAGE_SIZE, NUM_CLASSES
from lit_mnist.options import NonNegativeFiniteFloat, PositiveFiniteFloat, Probability

# Mean and standard deviation of the MNIST training pixels in [0, 1], the usual input normalisation.
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081


class MNISTClassifier(LightningModule):
    """A fully connected ReLU network for MNIST digits: 784 -> hidden_sizes -> 10.

    Args:
        hidden_sizes: Width of each hidden layer; its length is the depth. The post's deeper network is [500, 500].
        init: Weight initialisation. "normal" draws every weight from N(0, 1) with zero biases, as the post does;
            "kaiming" is He initialisation, which suits ReLU networks.
        learning_rate: Step size of the optimizer (the post uses 0.0001 with plain gradient descent).
        optimizer: "sgd" (the post's plain gradient descent, with optional momentum) or "adamw".
        momentum: SGD momentum; 0 is plain gradient descent.
        weight_decay: Decoupled weight decay for AdamW, L2 penalty for SGD.
        lr_schedule: "constant" keeps learning_rate; "onecycle" warms up to it and anneals to near zero over the
            run; "cosine" anneals from it to zero. Both schedules need a bounded run (trainer.max_steps or max_epochs).
        dropout: Probability of zeroing each hidden activation during training; 0 turns dropout off.
        normalize_inputs: Standardise pixels with the MNIST mean and standard deviation; off feeds [0, 1] pixels,
            as the post does.
    """

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = [500, 500],
        init: Literal["normal", "kaiming"] = "normal",
        learning_rate: PositiveFiniteFloat = 1e-4,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        momentum: Probability = 0.0,
        weight_decay: NonNegativeFiniteFloat = 0.0,
        lr_schedule: Literal["constant", "onecycle", "cosine"] = "constant",
        dropout: Probability = 0.0,
        normalize_inputs: bool = False,
    ) -> None:
        super().__init__()
        # The CLI passes its checked numbers as subclasses of float and int; stored as such, they would make every
        # checkpoint unloadable with torch.load(weights_only=True).
        hidden_sizes = [int(size) for size in hidden_sizes]
        learning_rate, momentum, weight_decay, dropout = map(float, (learning_rate, momentum, weight_decay, dropout))
        self.save_hyperparameters()

        sizes = [IMAGE_SIZE * IMAGE_SIZE, *hidden_sizes, NUM_CLASSES]
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"layer{index}"] = nn.Linear(fan_in, fan_out)
            if index < len(sizes) - 1:
                layers[f"relu{index}"] = nn.ReLU()
                if dropout > 0:
                    layers[f"dropout{index}"] = nn.Dropout(dropout)
        self.network = nn.Sequential(layers)
        self._initialize(init)

        # Lightning traces forward() with this to draw the graph in TensorBoard.
        self.example_input_array = torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE)

        # One metric object per stage: each accumulates on the model's device and resets on its own.
        # nan_strategy="disable": a diverged run must show NaN, not silently drop it (and the check would sync a GPU).
        # It also makes MeanMetric ignore update's weights (torchmetrics issue 3434), so each batch's mean loss is
        # given once per digit: a short last batch or a smaller shard counts for its digits, not as a whole batch.
        # validate_args=False skips per-call input checks that would cost more than this network's step.
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(NUM_CLASSES, average="micro", validate_args=False) for _ in range(3)
        )
        # Each stage's batches not yet counted into its metrics: (loss, batch size, predicted classes, labels).
        self._pending: dict[str, list[tuple[Tensor, int, Tensor, Tensor]]] = {"train": [], "val": [], "test": []}
        self._train_window_logged_at = 0  # global_step of the last training figures

    def _initialize(self, init: str) -> None:
        for module in self.network:
            if isinstance(module, nn.Linear):
                if init == "normal":
                    nn.init.normal_(module.weight, mean=0.0, std=1.0)
                else:
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        """Map a batch of images (N, 1, 28, 28) with pixels in [0, 1] to class logits (N, 10)."""
        if self.hparams.normalize_inputs:
            images = (images - PIXEL_MEAN) / PIXEL_STD
        return self.network(images.flatten(1))

    def _logits_and_loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        logits = self(images)
        return logits, F.cross_entropy(logits, labels)

    # Each batch only keeps its loss, predictions and labels (tensors on the device, no sync). The metrics see them
    # in one update per logging interval (the post printed every 100 steps) or per pass: a torchmetrics update per
    # batch costs a noticeable share of this small network's step.

    def _step(self, stage: str, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        logits, loss = self._logits_and_loss(batch)
        labels = batch[1]
        self._pending[stage].append((loss.detach(), labels.numel(), logits.detach().argmax(dim=1), labels))
        return logits, loss

    def _count_pending(self, stage: str, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy) -> None:
        """Adds the stage's pending batches to its metric objects, in one update each."""
        if not self._pending[stage]:
            return
        losses, sizes, predictions, labels = zip(*self._pending[stage])
        self._pending[stage].clear()
        # Each batch's mean loss once per digit (see __init__).
        loss_metric.update(torch.stack(losses).repeat_interleave(torch.tensor(sizes, device=self.device)))
        acc_metric.update(torch.cat(predictions), torch.cat(labels))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step("train", batch)[1]

    def on_train_start(self) -> None:
        self._pending["train"].clear()  # nothing left over from an earlier fit or LR finder run in this process

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # After the optimizer step: global_step counts the steps taken, so under gradient accumulation the batches
        # that make up one step all land in the same window.
        step, interval = self.global_step, self.trainer.log_every_n_steps
        if step > self._train_window_logged_at and step % interval == 0:
            self._log_train_window(prog_bar=True)

    def on_train_end(self) -> None:
        if self.global_step > self._train_window_logged_at:
            self._log_train_window(prog_bar=False)  # the steps after the last full interval

    def _log_train_window(self, prog_bar: bool) -> None:
        if not self._pending["train"]:  # a resumed run's first step can close a window it never saw
            return
        self._train_window_logged_at = self.global_step
        self._count_pending("train", self.train_loss, self.train_acc)
        # compute() averages over the window, across processes too; reset() starts the next window.
        figures = {"loss/train": self.train_loss.compute(), "acc/train": self.train_acc.compute()}
        self.train_loss.reset()
        self.train_acc.reset()
        # Written straight to the loggers at the number of steps taken: Lightning's self.log decides by its own
        # batch counter when to write, which drifts from this window under gradient accumulation and has no call
        # after the last step.
        values = {name: float(value) for name, value in figures.items()}  # read from the device once per window
        for logger in self.loggers:
            logger.log_metrics(values, step=self.global_step)
        if prog_bar:
            # As tensors on the CPU: Lightning reads the progress bar's figures with .item() after every step until
            # they are logged again, which for tensors on a GPU would wait for the device at every step.
            self.log_dict({name: torch.tensor(value) for name, value in values.items()}, prog_bar=True, logger=False)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    # The metric objects are logged once per pass, not per batch: each self.log call costs Lightning more than a
    # batch of this network, and the figures are the pass's anyway (computed and reset by Lightning at its end).

    def on_validation_epoch_start(self) -> None:
        self._pending["val"].clear()  # nothing left over from a pass that an exception cut short

    def on_validation_epoch_end(self) -> None:
        self._count_pending("val", self.val_loss, self.val_acc)
        self.log("loss/val", self.val_loss, prog_bar=True)
        self.log("acc/val", self.val_acc, prog_bar=True)
        if self.trainer.state.fn == "fit":
            # Lightning writes these at its own counter, one behind the steps taken during training; a logged
            # "step" is the x-axis it uses instead, so validation and training figures of a moment share a step.
            self.log("step", float(self.global_step))

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Counts into test loss and accuracy; returns the logits, which callbacks draw figures from."""
        return self._step("test", batch)[0].detach()

    def on_test_epoch_start(self) -> None:
        self._pending["test"].clear()

    def on_test_epoch_end(self) -> None:
        self._count_pending("test", self.test_loss, self.test_acc)
        self.log("loss/test", self.test_loss)
        self.log("acc/test", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        """Class probabilities (N, 10) of a batch of images, with the batch's second part (the images' indices)."""
        images, indices = batch
        return indices, self(images).softmax(dim=1)

    def configure_optimizers(self):
        if self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                self.parameters(),
                lr=self.hparams.learning_rate,
                momentum=self.hparams.momentum,
                weight_decay=self.hparams.weight_decay,
            )
        else:
            # The fused kernel updates all parameters in one pass: on a CPU it roughly halves AdamW's share of a step.
            optimizer = torch.optim.AdamW(
                self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay, fused=True
            )
        if self.hparams.lr_schedule == "constant":
            return optimizer
        total_steps = self.trainer.estimated_stepping_batches
        if self.hparams.lr_schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                # Momentum stays what the config says rather than cycling with the rate.
                optimizer,
                max_lr=self.hparams.learning_rate,
                total_steps=total_steps,
                cycle_momentum=False,
            )
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
