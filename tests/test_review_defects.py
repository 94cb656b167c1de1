"""Defects a review found, each proven in this process through the CLI's and the classes' own entry points."""

import io
import sys
from contextlib import redirect_stdout

import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.data import MNISTDataModule
from lit_mnist.model import MNISTClassifier
from lit_mnist.trainer import Trainer
from tests.conftest import TINY_ARGS, first_run, last_checkpoint, make_digits, run_in_process

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "5"]
AUGMENTED = [
    "--data.max_rotation",
    "15",
    "--data.max_shift",
    "0.1",
    "--data.elastic_alpha",
    "8",
    "--model.dropout",
    "0.2",
]
TENSORBOARD_PARTS_OFF = [
    "--learning_rate_monitor", "false", "--tensorboard.gradient_norms", "false", "--tensorboard.speed", "false",
    "--tensorboard.histograms", "false", "--tensorboard.first_layer_units", "0", "--tensorboard.embedding_digits", "0",
    "--tensorboard.pr_curves", "false", "--tensorboard.config_text", "false",
]  # fmt: skip


def fit_in_process(work, data, *args):
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, *QUIET, *args, cwd=work)
    assert result.returncode == 0, result.stderr
    return last_checkpoint(work)["state_dict"]


def test_nothing_drawn_for_tensorboard_changes_the_trained_weights(tiny_data, tmp_path):
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    everything_drawn = fit_in_process(tmp_path / "on", tiny_data, *AUGMENTED)
    nothing_drawn = fit_in_process(tmp_path / "off", tiny_data, *AUGMENTED, *TENSORBOARD_PARTS_OFF)
    assert everything_drawn.keys() == nothing_drawn.keys()
    for name, weights in everything_drawn.items():
        assert torch.equal(weights, nothing_drawn[name]), name


def test_the_histograms_fixed_digits_are_never_augmented(tiny_data, tmp_path):
    from lit_mnist.tensorboard.extras import TensorBoardExtras

    seen = {}

    class Keep(TensorBoardExtras):
        def on_train_end(self, trainer, pl_module):
            seen["digits"] = self._batch(trainer, pl_module)[0].cpu()

    datamodule = MNISTDataModule(str(tiny_data), download=False, val_size=100, max_rotation=30, max_shift=0.2)
    logger = LightningTensorBoardLogger(tmp_path)
    trainer = Trainer(max_steps=2, log_every_n_steps=1, callbacks=[Keep()], enable_progress_bar=False,
                      enable_checkpointing=False, logger=logger, limit_val_batches=1)  # fmt: skip
    trainer.fit(MNISTClassifier(), datamodule=datamodule)
    first_digits = datamodule.val_data[0][: len(seen["digits"])]
    assert torch.equal(seen["digits"], first_digits[:, None].float() / 255)


def test_predict_called_twice_prints_each_line_once(checkpoint, tmp_path):
    from PIL import Image

    Image.fromarray(make_digits(1, seed=3)[0][0].numpy()).save(tmp_path / "digit.png")
    model = MNISTClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    datamodule = MNISTDataModule(predict_path=str(tmp_path / "digit.png"))
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    for _ in range(2):
        printed = io.StringIO()
        with redirect_stdout(printed):
            trainer.predict(model, datamodule=datamodule)
        lines = [line for line in printed.getvalue().splitlines() if "digit.png" in line]
        assert len(lines) == 1, printed.getvalue()


def test_every_cli_gets_callbacks_of_its_own(tiny_data, tmp_path):
    args = ["--data.data_dir", str(tiny_data), "--trainer.logger", "false", *QUIET]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", sys.argv[:1])  # the args are the whole command line
        first, second = (LitMNISTCLI(args=args, run=False) for _ in range(2))
    assert len(first.trainer.callbacks) == len(second.trainer.callbacks)
    shared = {id(callback) for callback in first.trainer.callbacks} & {id(c) for c in second.trainer.callbacks}
    assert not shared


def test_images_per_second_counts_every_batch_of_an_accumulated_step(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (tmp_path / "run").mkdir()
    fit_in_process(tmp_path / "run", tiny_data, "--trainer.accumulate_grad_batches", "3",
                   "--trainer.log_every_n_steps", "5")  # fmt: skip
    events = EventAccumulator(str(first_run(tmp_path / "run")))
    events.Reload()
    steps = {event.step: event.value for event in events.Scalars("train/steps_per_second")}
    images = {event.step: event.value for event in events.Scalars("train/images_per_second")}
    assert steps and steps.keys() == images.keys()
    for step, per_second in steps.items():
        assert images[step] == pytest.approx(per_second * 100 * 3, rel=1e-6)  # batch 100, 3 batches a step
