"""Lightning's floor: plain_loop.py's network, batches and steps through Lightning's Trainer with nothing else on (no
logger, callbacks, progress bar, checkpoints or sanity check). Used by throughput.py as (d), and runnable on its own as
the whole script that any Lightning port of the post's experiment is measured against:

    python benchmarks/bare_loop.py --data-dir ../shared/data
"""

from collections.abc import Sequence

import lightning.pytorch as pl
import plain_loop
import torch
from torch import nn
from torch.nn import functional as F

from lit_mnist.data.batches import SequentialBatches, ShuffledBatches


class BareMNIST(pl.LightningModule):
    """The plain loop's network and steps, with nothing Lightning does not need."""

    def __init__(self) -> None:
        super().__init__()
        self.network = plain_loop.build(seed=42)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return F.cross_entropy(self.network(plain_loop.pixels(images)), labels)

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        self.network(plain_loop.pixels(images))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-4)


def train(data, steps: int, callbacks: Sequence[pl.Callback] = ()) -> nn.Module:
    """The plain loop's training (its batches, a validation pass each epoch) in Lightning's loop."""
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    model = BareMNIST()
    trainer.fit(model, ShuffledBatches(*data["train"], 100, seed=42), SequentialBatches(*data["val"], 100))
    return model.network


if __name__ == "__main__":
    plain_loop.main(train, __doc__.splitlines()[0])
