"""A run killed with SIGKILL and resumed ends bit for bit where the same run never interrupted ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, last_checkpoint, run_cli, write_tiny_mnist

# Everything that draws random numbers or carries state is on: shuffling, dropout, affine and elastic augmentation,
# AdamW's moments and a one-cycle schedule. A small network keeps the steps quick; last.ckpt is refreshed every 11
# steps only (5 batches an epoch), so most saves, and the one the kill leaves behind, fall mid-epoch.
EVERY = 11
STEPS = EVERY * 60
# fmt: off
RUN_ARGS = [
    "--model.hidden_sizes", "[32, 32]", "--model.init", "kaiming", "--model.dropout", "0.2",
    "--model.optimizer", "adamw", "--model.learning_rate", "0.01", "--model.lr_schedule", "onecycle",
    "--data.max_rotation", "10", "--data.max_shift", "0.1", "--data.max_scale", "0.1", "--data.elastic_alpha", "10",
    "--data.val_size", "100", "--trainer.max_steps", str(STEPS), "--trainer.enable_progress_bar", "false",
    "--trainer.check_val_every_n_epoch", "10",
    "--checkpoint.save_last", "false", "--last_checkpoint.every_n_train_steps", str(EVERY),
]
# fmt: on


def final_state(work: Path) -> dict[str, torch.Tensor]:
    checkpoint = last_checkpoint(work)
    assert checkpoint["global_step"] == STEPS
    return checkpoint["state_dict"]


def printed_test_metrics(output: str) -> str:
    return output[output.index("Test metric") :]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli("fit", "--data.data_dir", str(data), *RUN_ARGS, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, result.stdout


def test_same_seed_same_run_bit_for_bit(data, uninterrupted, tmp_path):
    reference, reference_output = uninterrupted
    result = run_cli("fit", "--data.data_dir", str(data), *RUN_ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert printed_test_metrics(result.stdout) == printed_test_metrics(reference_output)
    expected, actual = final_state(reference), final_state(tmp_path)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_kill_and_resume_matches_the_uninterrupted_run(data, uninterrupted, tmp_path):
    reference, reference_output = uninterrupted
    interrupted = tmp_path
    args = ["fit", "--data.data_dir", str(data), *RUN_ARGS]

    # Start the same run and kill it hard once it has saved a few checkpoints.
    process = subprocess.Popen(
        [sys.executable, "-m", "lit_mnist", *args],
        cwd=interrupted,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    last = interrupted / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < STEPS, "the run finished before it could be killed"

    resumed = run_cli(*args, "--ckpt_path", "last", cwd=interrupted)
    assert resumed.returncode == 0, resumed.stderr
    # It continued the run in its own folder rather than starting a new one.
    assert [p.name for p in (interrupted / "lightning_logs").iterdir()] == ["version_0"]

    expected, actual = final_state(reference), final_state(interrupted)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resuming from step {killed_at}"
    assert printed_test_metrics(resumed.stdout) == printed_test_metrics(reference_output)
