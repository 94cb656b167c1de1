"""The post's first argument, runnable: the TensorFlow Playground's spiral, learned by the MNIST run's network."""

from lit_mnist.playground.datamodule import SpiralDataModule

__all__ = ["SpiralDataModule"]
