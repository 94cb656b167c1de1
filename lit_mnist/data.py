"""MNIST as a LightningDataModule: torchvision reads the files once, batches are cut from tensors in memory."""

from typing import Any, Optional

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torchvision.datasets import MNIST

from lit_mnist import mnist_files
from lit_mnist.augment import random_affine
from lit_mnist.batches import SequentialBatches, ShuffledBatches
from lit_mnist.errors import UserError
from lit_mnist.model import NonNegativeFiniteFloat


class MNISTDataModule(LightningDataModule):
    """MNIST's 70,000 handwritten digits, split as in the post.

    The images stay uint8 in memory (55 MB rather than 220 MB as floats, and a quarter of the bytes to move to an
    accelerator); each batch becomes float on its device, which costs nothing next to the network's step.

    TensorFlow's ``input_data`` (which the post uses) keeps the first 5,000 training images for validation and trains
    on the other 55,000; the official 10,000 test images are the test set, every one of them counted.

    Args:
        data_dir: Folder that holds (or receives) ``MNIST/raw/`` with the four IDX files; relative to the current
            folder.
        download: Download the files from the torchvision mirrors when they are missing.
        batch_size: Images per optimizer step (the post uses 100). Under several processes this is the global batch,
            shared out among them.
        val_size: How many of the first training images are held out for validation.
        max_rotation: Training augmentation: largest random rotation, in degrees (0 turns it off).
        max_shift: Training augmentation: largest random shift, as a fraction of the image size.
        max_scale: Training augmentation: largest random change of size, as a fraction (0.1 means 0.9x to 1.1x).
    """

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        batch_size: PositiveInt = 100,
        val_size: PositiveInt = 5000,
        max_rotation: NonNegativeFiniteFloat = 0.0,
        max_shift: NonNegativeFiniteFloat = 0.0,
        max_scale: NonNegativeFiniteFloat = 0.0,
    ) -> None:
        super().__init__()
        # Plain numbers in the checkpoint, not the CLI's checked subclasses: see MNISTClassifier.
        batch_size, val_size = int(batch_size), int(val_size)
        max_rotation, max_shift, max_scale = float(max_rotation), float(max_shift), float(max_scale)
        self.save_hyperparameters()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.train_batches: Optional[ShuffledBatches] = None

    @property
    def augments(self) -> bool:
        return any((self.hparams.max_rotation, self.hparams.max_shift, self.hparams.max_scale))

    def prepare_data(self) -> None:
        """Download MNIST if any of its files is missing, then check all four.

        Lightning runs this once per machine, before the run writes anything, so bad data stops it with nothing
        written.
        """
        if mnist_files.missing_files(self.data_dir) and self.hparams.download:
            mnist_files.download(self.data_dir)
        mnist_files.check_files(self.data_dir)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            images, labels = self._load(train=True)
            val = self.hparams.val_size
            if val >= len(labels):
                raise UserError(
                    f"--data.val_size {val} leaves no training images: MNIST's training set has {len(labels)}"
                )
            self.val_data = images[:val], labels[:val]
            self.train_data = images[val:], labels[val:]
        elif stage == "test":
            self.test_data = self._load(train=False)

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        dataset = MNIST(self.data_dir, train=train, download=False)
        return dataset.data, dataset.targets

    def _shard(self) -> dict[str, int]:
        trainer = self.trainer
        return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}

    def train_dataloader(self) -> ShuffledBatches:
        if self.train_batches is None:
            # One seed governs the whole run: seed_everything(seed) makes torch.initial_seed() == seed.
            seed = torch.initial_seed()
            self.train_batches = ShuffledBatches(*self.train_data, self.batch_size, seed, **self._shard())
        return self.train_batches

    def val_dataloader(self) -> SequentialBatches:
        return SequentialBatches(*self.val_data, self.batch_size, **self._shard())

    def test_dataloader(self) -> SequentialBatches:
        return SequentialBatches(*self.test_data, self.batch_size, **self._shard())

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Turn uint8 pixels into floats in [0, 1] on the batch's device, augmenting training batches."""
        # Only the (uint8 images, labels) batches of these loaders; the model's example input passes untouched.
        if not isinstance(batch, (tuple, list)) or batch[0].dtype != torch.uint8:
            return batch
        images, *rest = batch
        images = images.unsqueeze(1).float().div_(255)
        if self.trainer.training and self.augments:
            images = random_affine(images, self.hparams.max_rotation, self.hparams.max_shift, self.hparams.max_scale)
        return (images, *rest)
