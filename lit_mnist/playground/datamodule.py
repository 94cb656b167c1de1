"""The TensorFlow Playground's spiral as a LightningDataModule: the data of the post's first argument."""

from typing import NoReturn

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningDataModule
from torch import Tensor

from lit_mnist.data.batches import SequentialBatches, ShuffledBatches, shard_of
from lit_mnist.playground.spiral import MAX_NOISE, check_features, features, spiral
from lit_mnist.run.errors import UserError


class SpiralDataModule(LightningDataModule):
    """The TensorFlow Playground's spiral: two interleaved spirals of points in the plane, one class each.

    By default it is the Playground's: 500 points, no noise, half of them for training and half for testing, fed to
    the network as their two coordinates X1 and X2. The Playground holds no points back for validation, and neither
    does this module: a run's model is its last.ckpt.

    Args:
        features: The network's inputs, any of the Playground's seven: x1, x2, x1_squared, x2_squared, x1_times_x2,
            sin_x1, sin_x2. [x1, x2] is the raw point; the others are the features a shallow network needs made for
            it.
        noise: How far each coordinate is moved at random, at most (the Playground's noise slider divided by 100):
            from 0 to 0.5.
        num_samples: How many points, half on each spiral.
        train_percent: The share of the points, in percent, that training sees; the others are the test set (the
            Playground's "ratio of training to test data").
        batch_size: Points per optimizer step (the Playground's default is 10).
        seed: The seed of the points' noise and of their split into training and test points, apart from the run's
            seed: runs with other seeds learn the same spiral.
    """

    num_classes = 2

    def __init__(
        self,
        features: list[str] = ["x1", "x2"],
        noise: float = 0.0,
        num_samples: PositiveInt = 500,
        train_percent: PositiveInt = 50,
        batch_size: PositiveInt = 10,
        seed: NonNegativeInt = 0,
    ) -> None:
        super().__init__()
        features, noise = [str(name) for name in features], float(noise)
        num_samples, train_percent, batch_size, seed = int(num_samples), int(train_percent), int(batch_size), int(seed)
        check_features(features)
        if not 0 <= noise <= MAX_NOISE:  # also catches NaN
            raise UserError(f"--data.noise {noise}: must be between 0 and {MAX_NOISE}, as on the Playground's slider")
        if not 0 < train_percent < 100:
            raise UserError(f"--data.train_percent {train_percent}: must be between 1 and 99")
        if num_samples < 4:
            raise UserError(f"--data.num_samples {num_samples}: give at least 4, two on each spiral")
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.input_shape = [len(features)]

    def setup(self, stage: str) -> None:
        """Generate the points (the same ones for every stage and every call) and split them as the Playground does:
        shuffled, the first train_percent percent for training."""
        generator = torch.Generator().manual_seed(self.hparams.seed)
        points, labels = spiral(self.hparams.num_samples, self.hparams.noise, generator)
        order = torch.randperm(len(labels), generator=generator)
        points, labels = points[order], labels[order]
        split = len(labels) * self.hparams.train_percent // 100
        self.train_points, self.train_labels = points[:split], labels[:split]
        self.test_points, self.test_labels = points[split:], labels[split:]

    def inputs(self, points: Tensor) -> Tensor:
        """The network's inputs for points in the plane: their features."""
        return features(points, self.hparams.features)

    def train_dataloader(self) -> ShuffledBatches:
        """A new loader for every fit, at the epoch the fit starts from, as MNIST's."""
        epoch = self.trainer.current_epoch if self.trainer else 0
        inputs = self.inputs(self.train_points)
        return ShuffledBatches(
            inputs, self.train_labels, self.batch_size, torch.initial_seed(), epoch, **shard_of(self.trainer)
        )

    def val_dataloader(self) -> list:
        """None: the Playground holds no points back for validation. Train with ``Trainer(limit_val_batches=0)``, as
        the command line does."""
        return []

    def test_dataloader(self) -> SequentialBatches:
        return SequentialBatches(
            self.inputs(self.test_points), self.test_labels, self.batch_size, **shard_of(self.trainer)
        )

    def predict_dataloader(self) -> NoReturn:
        raise UserError("predict takes MNIST images; the spiral's network is shown in TensorBoard's IMAGES tab")
