"""The post's fully connected network as a LightningModule."""

import copy
import math
from collections import OrderedDict
from typing import Literal

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils import fuse_linear_bn_eval
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lit_mnist.data.mnist_files import IMAGE_SIZE, NUM_CLASSES
from lit_mnist.run.options import NonNegativeFiniteFloat, PositiveFiniteFloat, Probability
from lit_mnist.run.step_logging import logs_this_step

# Mean and standard deviation of the MNIST training pixels in [0, 1], the usual input normalisation.
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081
# The activations the post discusses: ReLU, the historical sigmoid and tanh, and none at all.
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}


class MNISTClassifier(LightningModule):
    """A fully connected network for MNIST digits: 784 -> hidden_sizes -> 10, with ReLU (or another activation) after
    each hidden layer.

    The same network learns the TensorFlow Playground's spiral (lit_mnist/playground): the command line takes its
    input and output sizes from the data module, MNIST's or the spiral's.

    Args:
        hidden_sizes: Width of each hidden layer; its length is the depth. The post's deeper network is [500, 500];
            [] is the previous post's network, a single layer.
        activation: What follows each hidden layer: "relu" (the post's, "almost always the right choice"), the
            historical "sigmoid" and "tanh", or "identity", none: then the whole network is one linear map, which
            ``fold_linear_layers`` turns into the single layer it equals.
        init: Weight initialisation. "normal" draws every weight from N(0, 1) with zero biases, as the post does;
            "kaiming" is He initialisation, scaled for the activation.
        learning_rate: Step size of the optimizer (the post uses 0.0001 with plain gradient descent).
        optimizer: "sgd" (the post's plain gradient descent, with optional momentum) or "adamw".
        momentum: SGD momentum; 0 is plain gradient descent.
        weight_decay: Decoupled weight decay for AdamW, L2 penalty for SGD.
        lr_schedule: "constant" keeps learning_rate; "onecycle" warms up to it and anneals to near zero over the
            run; "cosine" anneals from it to zero. Both schedules need a bounded run (trainer.max_steps or max_epochs).
        dropout: Probability of zeroing each hidden activation during training; 0 turns dropout off.
        batch_norm: Normalise each hidden layer's sums over the batch before its ReLU (Ioffe and Szegedy, 2015).
            After training each BatchNorm is a fixed scale and shift, which ``fold_batch_norm`` merges into the
            Linear before it: what is left is the same 784 -> hidden_sizes -> 10 ReLU network (export writes that).
        normalize_inputs: Standardise pixels with the MNIST mean and standard deviation; off feeds [0, 1] pixels,
            as the post does.
        input_shape: The shape of one input, which the first layer sees flattened: MNIST's [1, 28, 28] images.
        num_classes: How many classes the last layer scores: MNIST's 10 digits.
    """

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = [500, 500],
        activation: Literal["relu", "sigmoid", "tanh", "identity"] = "relu",
        init: Literal["normal", "kaiming"] = "normal",
        learning_rate: PositiveFiniteFloat = 1e-4,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        momentum: Probability = 0.0,
        weight_decay: NonNegativeFiniteFloat = 0.0,
        lr_schedule: Literal["constant", "onecycle", "cosine"] = "constant",
        dropout: Probability = 0.0,
        batch_norm: bool = False,
        normalize_inputs: bool = False,
        input_shape: list[int] = [1, IMAGE_SIZE, IMAGE_SIZE],
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        # Plain numbers, not the CLI's checked subclasses: checkpoints stay loadable with torch.load(weights_only=True).
        hidden_sizes, input_shape = [int(size) for size in hidden_sizes], [int(size) for size in input_shape]
        num_classes = int(num_classes)
        learning_rate, momentum, weight_decay, dropout = map(float, (learning_rate, momentum, weight_decay, dropout))
        self.save_hyperparameters()

        # layer1, relu1, layer2, relu2, layer3 for the post's network: the names in TensorBoard's graph.
        sizes = [math.prod(input_shape), *hidden_sizes, num_classes]
        self.network = nn.Sequential()
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            self.network.add_module(f"layer{index}", nn.Linear(fan_in, fan_out))
            if index < len(sizes) - 1:
                if batch_norm:
                    self.network.add_module(f"norm{index}", nn.BatchNorm1d(fan_out))
                self.network.add_module(f"{activation}{index}", ACTIVATIONS[activation]())
                if dropout > 0:
                    self.network.add_module(f"dropout{index}", nn.Dropout(dropout))
        nonlinearity = "linear" if activation == "identity" else activation  # torch's name for each, for He's gain
        for layer in self.network:
            if isinstance(layer, nn.Linear):
                if init == "normal":
                    nn.init.normal_(layer.weight, mean=0.0, std=1.0)
                else:
                    nn.init.kaiming_normal_(layer.weight, nonlinearity=nonlinearity)
                nn.init.zeros_(layer.bias)

        # Lightning traces forward() with this to draw the graph in TensorBoard.
        self.example_input_array = torch.zeros(1, *input_shape)
        # One metric object per stage, so that each accumulates and resets on its own (and across processes). The
        # loss metrics average every digit's loss: a short last batch counts for its digits, not as a whole batch.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def forward(self, images: Tensor) -> Tensor:
        """Map a batch of inputs (N, *input_shape), such as images (N, 1, 28, 28) with pixels in [0, 1], to class logits
        (N, num_classes)."""
        if self.hparams.normalize_inputs:
            images = (images - PIXEL_MEAN) / PIXEL_STD
        return self.network(images.flatten(1))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        if logs_this_step(self):  # the step's batch figures, as the post prints them every 100 steps
            self.train_acc(logits, labels)
            self.log("loss/train", loss, prog_bar=True)
            self.log("acc/train", self.train_acc, prog_bar=True)
        if self.trainer.world_size > 1:
            # DDP averages the processes' gradients with equal weights, and the shares of a batch can differ by a
            # digit: weighing each share's mean by its size makes the step the whole batch's mean, as on one process.
            batch = self.trainer.strategy.reduce(torch.tensor(float(len(labels)), device=loss.device), reduce_op="sum")
            return loss * (len(labels) * self.trainer.world_size / batch)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], loss: MeanMetric, acc: MulticlassAccuracy) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss.update(F.cross_entropy(logits, labels, reduction="none"))
        acc.update(logits, labels)
        return logits

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        # Logged once per pass, where Lightning computes and resets them: the figures that logging them at every
        # batch gives, without the cost of a self.log call per batch (see lit_mnist/run/step_logging.py).
        self.log("loss/val", self.val_loss, prog_bar=True)
        self.log("acc/val", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Counts into test loss and accuracy; returns the logits, which callbacks draw figures from."""
        return self._evaluate(batch, self.test_loss, self.test_acc)

    def on_test_epoch_end(self) -> None:
        self.log("loss/test", self.test_loss)
        self.log("acc/test", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> tuple[Tensor, Tensor]:
        """Class probabilities (N, num_classes) of a batch of inputs, with the batch's second part (the inputs'
        indices)."""
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
            scheduler = torch.optim.lr_scheduler.OneCycleLR(  # momentum stays as configured, not cycled
                optimizer, max_lr=self.hparams.learning_rate, total_steps=total_steps, cycle_momentum=False
            )
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def fold_batch_norm(network: nn.Sequential) -> nn.Sequential:
    """A copy of a trained ``network`` (in eval mode) with each BatchNorm merged into the Linear before it.

    In eval mode a BatchNorm scales and shifts each unit by fixed amounts, which the Linear's weights and bias can
    absorb: the copy gives the same outputs with the Linear layers and ReLUs alone.
    """
    if network.training:
        raise ValueError("fold_batch_norm needs the network in eval mode, where BatchNorm uses its running statistics")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for name, module in network.named_children():
        if isinstance(module, nn.BatchNorm1d):
            linear = next(reversed(layers))
            layers[linear] = fuse_linear_bn_eval(layers[linear], module)
        else:
            layers[name] = copy.deepcopy(module)
    return nn.Sequential(layers)


def fold_linear_layers(network: nn.Sequential) -> nn.Linear:
    """The single Linear layer that a trained network without activations (``activation="identity"``, in eval mode)
    equals: W = W3 W2 W1 and b = W3 (W2 b1 + b2) + b3, and likewise for any depth.
    """
    weight, bias = None, None
    for name, module in fold_batch_norm(network).named_children():
        if isinstance(module, nn.Linear):
            weight = module.weight if weight is None else module.weight @ weight
            bias = module.bias if bias is None else module.weight @ bias + module.bias
        elif not isinstance(module, (nn.Identity, nn.Dropout)):  # dropout does nothing in eval mode
            raise ValueError(f"only a network without an activation is one layer: {name} is {type(module).__name__}")
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer
