"""The "Learn TensorFlow Now" deeper MNIST network, done with PyTorch Lightning."""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lit_mnist.data import MNISTDataModule
    from lit_mnist.model import MNISTClassifier

__all__ = ["MNISTClassifier", "MNISTDataModule"]

# Loaded on first use rather than with the package, so that the command line (lit_mnist/__main__.py) runs before
# torch and Lightning load and can set the garbage collector up for them.
_HOMES = {"MNISTClassifier": "lit_mnist.model", "MNISTDataModule": "lit_mnist.data"}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
