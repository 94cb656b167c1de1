"""Which training steps' figures Lightning writes: one in every ``--trainer.log_every_n_steps``.

A ``self.log`` call costs Lightning more than a whole training step of the post's small network, so the model logs
its training figures only at the steps whose figures Lightning writes; the other steps' would never be seen.
"""

from lightning.pytorch import LightningModule


def logs_this_step(module: LightningModule) -> bool:
    """Whether the training step under way is one whose logged figures Lightning writes (the last step's too)."""
    trainer, step = module.trainer, module.global_step + 1  # the number of steps once this one is taken
    return step % trainer.log_every_n_steps == 0 or 0 < trainer.max_steps <= step
