"""MNIST as a LightningDataModule: torchvision reads the files once, batches are cut from tensors in memory."""

from pathlib import Path
from typing import Any, Optional

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torchvision.datasets import MNIST

from lit_mnist.data import mnist_files
from lit_mnist.data.augment import random_distortion
from lit_mnist.data.batches import SequentialBatches, ShuffledBatches, shard_of
from lit_mnist.data.images import UnreadableImage, read_digit, to_model_input
from lit_mnist.run.errors import UserError
from lit_mnist.run.options import NonNegativeFiniteFloat, PositiveFiniteFloat


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
        val_size: How many of the first training images are held out for validation. 0 trains on all 60,000 and
            validates on none: for the final run of settings chosen on the validation digits.
        max_rotation: Training augmentation: largest random rotation, in degrees (0 turns it off).
        max_shift: Training augmentation: largest random shift, as a fraction of the image size.
        max_scale: Training augmentation: largest random change of size, as a fraction (0.1 means 0.9x to 1.1x).
        elastic_alpha: Training augmentation: strength of a random elastic warp, in pixels (0 turns it off).
        elastic_sigma: Smoothness of the elastic warp, in pixels: the width of the Gaussian that smooths it.
        predict_path: For predict: an image file, or a folder whose files are images (PNG, JPEG and whatever else
            Pillow reads; any size, dark on light or light on dark). Each is prepared as MNIST's digits were.
    """

    # What the network's first and last layers are sized by (the command line links them to the model).
    input_shape = [1, mnist_files.IMAGE_SIZE, mnist_files.IMAGE_SIZE]
    num_classes = mnist_files.NUM_CLASSES

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = True,
        batch_size: PositiveInt = 100,
        val_size: NonNegativeInt = 5000,
        max_rotation: NonNegativeFiniteFloat = 0.0,
        max_shift: NonNegativeFiniteFloat = 0.0,
        max_scale: NonNegativeFiniteFloat = 0.0,
        elastic_alpha: NonNegativeFiniteFloat = 0.0,
        elastic_sigma: PositiveFiniteFloat = 4.0,
        predict_path: Optional[str] = None,
    ) -> None:
        super().__init__()
        # Plain numbers in the checkpoint, not the CLI's checked subclasses: see MNISTClassifier.
        batch_size, val_size = int(batch_size), int(val_size)
        max_rotation, max_shift, max_scale = float(max_rotation), float(max_shift), float(max_scale)
        elastic_alpha, elastic_sigma = float(elastic_alpha), float(elastic_sigma)
        self.save_hyperparameters()
        self.data_dir = str(mnist_files.locate(data_dir))
        self.batch_size = batch_size
        self.predict_files: list[Path] = []  # the images predicted, in the order of the predictions
        self.unreadable: list[tuple[Path, str]] = []  # files that are not images, with the reason

    @property
    def augments(self) -> bool:
        hparams = self.hparams
        return any((hparams.max_rotation, hparams.max_shift, hparams.max_scale, hparams.elastic_alpha))

    def prepare_data(self) -> None:
        """Decompress the files downloaded by hand as .gz, download MNIST if any file is still missing, then check all
        four.

        Lightning runs this once per machine, before the run writes anything, so bad data stops it with nothing
        written.
        """
        if self.trainer is not None and self.trainer.predicting:
            return  # predicting reads the user's images, not MNIST
        mnist_files.decompress_gzipped(self.data_dir)
        if mnist_files.missing_files(self.data_dir) and self.hparams.download:
            mnist_files.download(self.data_dir)
        mnist_files.check_files(self.data_dir)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            images, labels = self._load(train=True)
            val = self.hparams.val_size
            if stage == "validate" and val == 0:
                raise UserError(
                    "validate has no digits to run on: this run held none back (--data.val_size 0) and trained on "
                    "every training digit; use test to evaluate it"
                )
            if val >= len(labels):
                raise UserError(
                    f"--data.val_size {val} leaves no training images: MNIST's training set has {len(labels)}"
                )
            self.val_data = images[:val], labels[:val]
            self.train_data = images[val:], labels[val:]
        elif stage == "test":
            self.test_data = self._load(train=False)
        elif stage == "predict":
            self.predict_data = self._read_predict_images()

    def _read_predict_images(self) -> tuple[Tensor, Tensor]:
        """All readable images under predict_path as (digits, their index in predict_files)."""
        path = self.hparams.predict_path
        if path is None:
            raise UserError("predict needs images: give a file or a folder with --data.predict_path")
        path = Path(path)
        if path.is_dir():
            # Everything but folders and hidden files: a broken link or a pipe gets its line too.
            files = sorted(file for file in path.iterdir() if not file.is_dir() and not file.name.startswith("."))
        elif path.is_file():
            files = [path]
        else:
            raise UserError(f"--data.predict_path {path}: no such file or folder")
        digits = []
        self.predict_files, self.unreadable = [], []
        for file in files:
            try:
                digits.append(read_digit(file))
                self.predict_files.append(file)
            except UnreadableImage as error:
                self.unreadable.append((file, str(error)))
        if not digits:
            if not files:
                raise UserError(f"--data.predict_path {path}: the folder has no files")
            problems = "; ".join(f"{file.name}: {reason}" for file, reason in self.unreadable[:3])
            raise UserError(f"--data.predict_path {path}: no image could be read ({problems})")
        return torch.stack(digits), torch.arange(len(digits))

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        dataset = MNIST(self.data_dir, train=train, download=False)
        return dataset.data, dataset.targets

    def _evaluation_batches(self, images: Tensor, labels: Tensor, split: str) -> SequentialBatches:
        """Every digit of a split once, in batches that give each process at least one digit."""
        shard = shard_of(self.trainer)
        processes = shard.get("world_size", 1)
        if 0 < len(labels) < processes:  # none at all is a run without validation (--data.val_size 0)
            raise UserError(
                f"the {split} set has {len(labels)} digits, fewer than the {processes} processes: each needs one; use "
                f"at most {len(labels)} processes"
            )
        return SequentialBatches(images, labels, max(self.batch_size, processes), **shard)

    def train_dataloader(self) -> ShuffledBatches:
        """A new loader for every fit, at the epoch the fit starts from: a data module used for a second fit gives it
        the batches a new one would. Lightning restores a resumed run's position into it (``load_state_dict``)."""
        shard = shard_of(self.trainer)
        processes = shard.get("world_size", 1)
        if min(self.batch_size, len(self.train_data[1])) < processes:
            raise UserError(
                f"--data.batch_size {self.batch_size} cannot be shared out among {processes} processes: give at least "
                "one training digit per process"
            )
        # One seed governs the whole run: seed_everything(seed) makes torch.initial_seed() == seed.
        epoch = self.trainer.current_epoch if self.trainer else 0
        return ShuffledBatches(*self.train_data, self.batch_size, torch.initial_seed(), epoch, **shard)

    def val_dataloader(self) -> SequentialBatches:
        return self._evaluation_batches(*self.val_data, "validation")

    def test_dataloader(self) -> SequentialBatches:
        return self._evaluation_batches(*self.test_data, "test")

    def predict_dataloader(self) -> SequentialBatches:
        return SequentialBatches(*self.predict_data, self.batch_size)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Turn uint8 pixels into floats in [0, 1] on the batch's device, augmenting training batches."""
        # Only the (uint8 images, labels) batches of these loaders; the model's example input passes untouched.
        if not isinstance(batch, (tuple, list)) or batch[0].dtype != torch.uint8:
            return batch
        images, *rest = batch
        images = to_model_input(images)
        if self.trainer.training and self.augments:
            hparams = self.hparams
            images = random_distortion(
                images,
                hparams.max_rotation,
                hparams.max_shift,
                hparams.max_scale,
                hparams.elastic_alpha,
                hparams.elastic_sigma,
            )
        return (images, *rest)
