"""The data: MNIST's files, the datamodule, its batches and distortions, and users' own digit images."""

from lit_mnist.data.datamodule import MNISTDataModule

__all__ = ["MNISTDataModule"]
