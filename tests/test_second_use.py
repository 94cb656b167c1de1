"""The second use of each stateful feature: a continued run with another plan, a study opened again, a data module
used for a second fit, a command run twice in one folder, and the odd sizes a first run never meets."""

import os
import stat
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback, seed_everything

from lit_mnist.data import MNISTDataModule
from lit_mnist.model import MNISTClassifier
from lit_mnist.trainer import Trainer
from tests.conftest import TINY_ARGS, first_run, last_checkpoint, run_in_process

QUIET = ["--trainer.enable_progress_bar", "false"]
LAST = "lightning_logs/version_0/checkpoints/last.ckpt"


def fit(work: Path, data: Path, *args: str):
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, *QUIET, *args, cwd=work)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.filterwarnings("ignore:Argument ``heartbeat_interval`` is an experimental feature")
def test_a_study_opened_again_prunes_by_successive_halving_as_it_was_made(tmp_path):
    """Every worker but the one that creates a study opens it again: each must prune by the same rule."""
    import optuna

    from lit_mnist.sweep.study import open_storage, open_study

    class Space:
        text = "model.learning_rate: {low: 0.001, high: 0.1}\n"

    storage = open_storage(None, tmp_path)
    created, opened = (open_study(storage, "s", Space()) for _ in range(2))
    assert isinstance(created.pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(opened.pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert vars(opened.pruner) == vars(created.pruner)


def test_continuing_a_cosine_run_past_its_planned_steps_gets_one_line(tiny_data, tmp_path):
    """A cosine schedule planned for 30 steps would climb back towards its peak after them."""
    schedule = ["--model.optimizer", "adamw", "--model.lr_schedule", "cosine", "--model.learning_rate", "0.01"]
    fit(tmp_path, tiny_data, *schedule)
    before = (tmp_path / LAST).read_bytes()
    result = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, *schedule,
                            "--trainer.max_steps", "40", "--ckpt_path", LAST, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: --trainer.max_steps 40: {LAST}'s cosine learning-rate schedule was planned for 30 steps and "
        "cannot go past them; continue to at most 30 steps, or train a new run with more steps from the start"
    ]
    assert (tmp_path / LAST).read_bytes() == before


@pytest.mark.parametrize("batch_size", [499, 249])  # 500 training digits: a last batch of 1, and of 2
def test_batch_norm_trains_on_a_batch_size_that_leaves_a_one_digit_batch(tiny_data, tmp_path, batch_size):
    fit(tmp_path, tiny_data, "--model.batch_norm", "true", "--data.batch_size", str(batch_size),
        "--trainer.max_steps", "6")  # fmt: skip
    assert last_checkpoint(tmp_path)["global_step"] == 6


class FirstBatches(Callback):
    """Keeps the labels of the first training batches of a fit."""

    def __init__(self, count: int = 3) -> None:
        self.count, self.labels = count, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if len(self.labels) < self.count:
            self.labels.append(batch[1].clone())


def fit_once(datamodule: MNISTDataModule) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    seed_everything(42, verbose=False)
    batches = FirstBatches()
    trainer = Trainer(max_steps=7, callbacks=[batches], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    model = MNISTClassifier(hidden_sizes=[16], init="kaiming", learning_rate=0.01)
    trainer.fit(model, datamodule=datamodule)
    return batches.labels, {name: value.clone() for name, value in model.state_dict().items()}


def test_a_data_module_used_for_a_second_fit_gives_it_the_same_batches_as_a_new_one(tiny_data):
    reused = MNISTDataModule(str(tiny_data), download=False, val_size=100)
    first_batches, first_weights = fit_once(reused)
    second_batches, second_weights = fit_once(reused)
    fresh_batches, fresh_weights = fit_once(MNISTDataModule(str(tiny_data), download=False, val_size=100))
    for batches in (second_batches, fresh_batches):
        assert len(batches) == len(first_batches) == 3
        assert all(torch.equal(a, b) for a, b in zip(first_batches, batches))
    assert all(torch.equal(first_weights[name], second_weights[name]) for name in first_weights)
    assert all(torch.equal(first_weights[name], fresh_weights[name]) for name in first_weights)


def test_fast_dev_run_writes_nothing_in_the_working_folder(tiny_data, tmp_path):
    result = run_in_process("fit", "--data.data_dir", str(tiny_data), "--data.val_size", "100", *QUIET,
                            "--trainer.fast_dev_run", "true",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert [path for path in written if not path.startswith("data/")] == []


def test_the_exported_file_is_readable_as_the_checkpoints_are(checkpoint, tmp_path):
    """A server running as another user reads the ONNX file as it reads the checkpoint: the umask decides both."""
    result = run_in_process("export", "--ckpt_path", str(checkpoint), "--output", "digits.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "digits.onnx").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_evaluating_without_a_checkpoint_gets_one_line(tiny_data, tmp_path, subcommand):
    result = run_in_process(subcommand, "--data.data_dir", str(tiny_data), *QUIET, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {subcommand} needs a trained network: add --ckpt_path lightning_logs/version_N/checkpoints/last.ckpt"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]


def test_a_continued_run_folder_describes_the_run_it_holds(tiny_data, tmp_path):
    """config.yaml of a run continued to more steps says so: --config on it makes the same network from scratch."""
    fit(tmp_path, tiny_data, "--trainer.max_steps", "20")
    fit(tmp_path, tiny_data, "--trainer.max_steps", "35", "--ckpt_path", "last")
    saved = yaml.safe_load((first_run(tmp_path) / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 35 and saved["ckpt_path"] is None
    continued = last_checkpoint(tmp_path)
    assert continued["global_step"] == 35

    again = tmp_path / "again"
    again.mkdir()
    result = run_in_process("fit", "--config", str(first_run(tmp_path) / "config.yaml"), cwd=again)
    assert result.returncode == 0, result.stderr
    reproduced = last_checkpoint(again)
    assert reproduced["global_step"] == 35
    for name, weights in continued["state_dict"].items():
        assert torch.equal(weights, reproduced["state_dict"][name]), name


def test_fit_twice_in_one_folder_makes_two_runs_with_the_same_figures(tiny_data, tmp_path):
    """Two CLIs in one process, one after the other in the same folder: nothing of the first leaks into the second."""
    outputs = [fit(tmp_path, tiny_data).stdout for _ in range(2)]
    runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
    assert runs == ["version_0", "version_1"]
    tables = [output[output.index("Test metric") :].split("Run folder")[0] for output in outputs]
    assert tables[0] == tables[1]
    first, second = (torch.load(tmp_path / "lightning_logs" / run / "checkpoints" / "last.ckpt", weights_only=True)
                     for run in runs)  # fmt: skip
    assert all(torch.equal(first["state_dict"][name], second["state_dict"][name]) for name in first["state_dict"])


def test_a_second_run_without_a_logger_in_one_folder_gets_one_line_and_overwrites_nothing(tiny_data, tmp_path):
    """Without a logger a run has no version_N folder: its config.yaml and checkpoints/ go into the working folder,
    where a second such run would replace them."""
    args = ["fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    first = run_in_process(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kept = {path: path.read_bytes() for path in [tmp_path / "config.yaml", *(tmp_path / "checkpoints").iterdir()]}
    second = run_in_process(*args, "--seed_everything", "7", cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    assert "already holds a run without a logger" in second.stderr and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert {path: path.read_bytes() for path in kept} == kept
    written = sorted(path.name for path in tmp_path.iterdir() if path != tiny_data)
    assert written == ["checkpoints", "config.yaml"]
