"""The "Learn TensorFlow Now" deeper MNIST network, done with PyTorch Lightning."""

from lit_mnist.data import MNISTDataModule
from lit_mnist.model import MNISTClassifier

__all__ = ["MNISTClassifier", "MNISTDataModule"]
