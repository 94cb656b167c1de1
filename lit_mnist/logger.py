"""The logger's former place, which the config.yaml of runs made by lit_mnist 0.1 names (``class_path``)."""

from lit_mnist.tensorboard.logger import TensorBoardLogger

__all__ = ["TensorBoardLogger"]
