"""Batches cut from tensors already in memory: no per-sample Python work, no PIL, no collate.

A DataLoader over MNIST spends more time building each batch of 100 images than this network spends training on it.
These iterables index the whole dataset tensor once per batch instead. They also shard every global batch across
processes (DDP) and, for training, remember their position so that a resumed run continues mid-epoch.
"""

import math
from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


def shard_of(trainer: Optional[Any]) -> dict[str, int]:
    """This process's rank and the number of processes, as the batches take them (nothing without a trainer)."""
    return {"rank": trainer.global_rank, "world_size": trainer.world_size} if trainer else {}


def shard_bounds(start: int, stop: int, rank: int, world_size: int) -> tuple[int, int]:
    """This process's contiguous share of the global batch [start, stop): the shares differ by at most one sample."""
    base, extra = divmod(stop - start, world_size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class _Batches:
    """Global batches of ``batch_size`` over the data, each shared out among the processes.

    A short last batch that would leave a process fewer than ``min_share`` samples is merged into the batch before
    it: no process is ever handed an empty batch (which would make its mean loss NaN), and with ``min_share`` 2 none a
    single image (which BatchNorm cannot normalise in training). Every sample is still in exactly one batch.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, rank: int = 0, world_size: int = 1,
                 min_share: int = 1) -> None:  # fmt: skip
        self.images, self.labels = images, labels
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        remainder = len(labels) % batch_size
        self._merge_last = 0 < remainder < min_share * world_size and len(labels) > batch_size

    def __len__(self) -> int:
        """Global batches per pass; every process gets a share of each, so all processes agree on the count."""
        return math.ceil(len(self.labels) / self.batch_size) - self._merge_last

    def _bounds(self, batch_index: int) -> tuple[int, int]:
        start = batch_index * self.batch_size
        stop = len(self.labels) if batch_index == len(self) - 1 else start + self.batch_size
        return shard_bounds(start, stop, self.rank, self.world_size)


class SequentialBatches(_Batches):
    """Every sample once, in file order: for validation and test."""

    def __iter__(self) -> Iterator[Batch]:
        for batch_index in range(len(self)):
            lo, hi = self._bounds(batch_index)
            yield self.images[lo:hi], self.labels[lo:hi]


class ShuffledBatches(_Batches):
    """Training batches in a fresh seeded permutation each epoch; resumable at any batch.

    The order of epoch e is a function of (seed, e) alone, so a run restored from ``state_dict()`` sees exactly the
    batches it would have seen had it never stopped. Lightning saves and restores that state in its checkpoints.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, seed: int, epoch: int = 0, **shard) -> None:
        super().__init__(images, labels, batch_size, min_share=2, **shard)
        self.seed = seed
        self.epoch = epoch
        self.batches_done = 0  # batches of `epoch` already handed out

    def __iter__(self) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.labels), generator=generator)
        for batch_index in range(self.batches_done, len(self)):
            lo, hi = self._bounds(batch_index)
            indices = order[lo:hi]
            # Advance before yielding: a checkpoint taken while this batch trains must resume after it.
            if batch_index + 1 == len(self):
                self.epoch, self.batches_done = self.epoch + 1, 0
            else:
                self.batches_done = batch_index + 1
            yield self.images[indices], self.labels[indices]

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.seed, self.epoch, self.batches_done = state_dict["seed"], state_dict["epoch"], state_dict["batches_done"]
