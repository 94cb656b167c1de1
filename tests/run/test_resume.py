"""A run killed with SIGKILL, or stopped by Ctrl-C or SIGTERM, and resumed ends bit for bit where the same run never
interrupted ends."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, first_run, last_checkpoint, run_in_process, run_in_subprocess, write_tiny_mnist

# The runs that are killed or signalled are processes of their own; the uninterrupted and resumed ones run in the
# test's process, and the same-seed run in another: equal weights across processes.
pytestmark = pytest.mark.slow

# Everything that draws random numbers or carries state is on: shuffling, dropout, affine and elastic augmentation,
# BatchNorm's running statistics, AdamW's moments and a one-cycle schedule. A small network keeps the steps quick;
# last.ckpt is refreshed every 11 steps only (5 batches an epoch), so most saves, and the one the kill leaves behind,
# fall mid-epoch.
EVERY = 11
STEPS = EVERY * 60
KILL_AT, KILL_SAVED = EVERY * 2 + 5, EVERY * 2
# fmt: off
RUN_ARGS = [
    "--model.hidden_sizes", "[32, 32]", "--model.init", "kaiming", "--model.dropout", "0.2",
    "--model.batch_norm", "true", "--model.optimizer", "adamw", "--model.learning_rate", "0.01",
    "--model.lr_schedule", "onecycle",
    "--data.max_rotation", "10", "--data.max_shift", "0.1", "--data.max_scale", "0.1", "--data.elastic_alpha", "10",
    "--data.val_size", "100", "--trainer.max_steps", str(STEPS), "--trainer.enable_progress_bar", "false",
    "--trainer.accelerator", "cpu",
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
    result = run_in_process("fit", "--data.data_dir", str(data), *RUN_ARGS, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, result.stdout


def test_same_seed_same_run_bit_for_bit(data, uninterrupted, tmp_path):
    reference, reference_output = uninterrupted
    result = run_in_subprocess("fit", "--data.data_dir", str(data), *RUN_ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert printed_test_metrics(result.stdout) == printed_test_metrics(reference_output)
    expected, actual = final_state(reference), final_state(tmp_path)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_kill_and_resume_matches_the_uninterrupted_run(data, uninterrupted, tmp_path):
    reference, reference_output = uninterrupted
    interrupted = tmp_path
    args = ["fit", "--data.data_dir", str(data), *RUN_ARGS]

    # The same run, killed hard mid-epoch at a step that is not a save: the last save before it is at KILL_SAVED.
    killed = run_in_subprocess(
        *args, "--trainer.callbacks+=tests.helpers.KillAtStep", f"--trainer.callbacks.step={KILL_AT}", cwd=interrupted
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert last_checkpoint(interrupted)["global_step"] == KILL_SAVED

    resumed = run_in_process(*args, "--ckpt_path", "last", cwd=interrupted)
    assert resumed.returncode == 0, resumed.stderr
    # It continued the run in its own folder rather than starting a new one.
    assert [p.name for p in (interrupted / "lightning_logs").iterdir()] == ["version_0"]

    expected, actual = final_state(reference), final_state(interrupted)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resuming from step {KILL_SAVED}"
    assert printed_test_metrics(resumed.stdout) == printed_test_metrics(reference_output)


def test_the_resumed_run_tells_tensorboard_to_drop_what_the_killed_one_logged_after_its_checkpoint(tmp_path, data):
    """The resumed process's event file starts with a purge marker at the checkpoint's step (one curve, no overlap)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    args = ["fit", "--data.data_dir", str(data), *RUN_ARGS, "--trainer.max_steps", str(KILL_AT + EVERY)]
    killed = run_in_subprocess(
        *args,
        "--trainer.callbacks+=tests.helpers.KillAtStep",
        f"--trainer.callbacks.step={KILL_AT}",
        "--trainer.log_every_n_steps",
        "1",
        cwd=tmp_path,
    )
    assert killed.returncode == -signal.SIGKILL
    resumed = run_in_process(*args, "--ckpt_path", "last", "--trainer.log_every_n_steps", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # An event file's name ends with its process's id and a counter. The resumed run ran in this process; the names'
    # times are whole seconds, so when both runs start within one they do not tell which came first.
    event_files = list(first_run(tmp_path).glob("events.out.tfevents.*"))
    resumed_files = [path for path in event_files if path.name.split(".")[-2] == str(os.getpid())]
    (killed_file,) = set(event_files) - set(resumed_files)
    logged_by_killed_run = [
        event.step for event in EventFileLoader(str(killed_file)).Load() for value in event.summary.value
        if value.tag == "loss/train"
    ]  # fmt: skip
    assert max(logged_by_killed_run) > KILL_SAVED  # steps that the resumed run trains again
    starts = [
        event.step for path in resumed_files for event in EventFileLoader(str(path)).Load()
        if event.HasField("session_log")
    ]  # fmt: skip
    assert starts == [KILL_SAVED]


def resumes_exactly(interrupted: Path, data: Path, uninterrupted: tuple[Path, str], command: str) -> None:
    """The resume command the stopped run printed ends with every tensor equal to the uninterrupted run's."""
    printed = shlex.split(command)
    assert printed[:4] == ["python", "-m", "lit_mnist", "fit"] and printed[-2] == "--ckpt_path"
    resumed = run_in_process(*printed[3:], cwd=interrupted)
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in (interrupted / "lightning_logs").iterdir()] == ["version_0"]
    expected, actual = final_state(uninterrupted[0]), final_state(interrupted)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after the stop and resume"
    assert printed_test_metrics(resumed.stdout) == printed_test_metrics(uninterrupted[1])


@pytest.mark.parametrize("signal_name, step", [("SIGINT", EVERY * 2 + 3), ("SIGTERM", EVERY * 3 + 6)])
def test_ctrl_c_and_sigterm_save_the_step_reached_and_resume_exactly(data, uninterrupted, tmp_path, signal_name, step):
    args = ["fit", "--data.data_dir", str(data), *RUN_ARGS]
    stopped = run_in_subprocess(
        *args,
        "--trainer.callbacks+=tests.helpers.SignalAtStep",
        f"--trainer.callbacks.step={step}",
        f"--trainer.callbacks.signal_name={signal_name}",
        cwd=tmp_path,
    )
    # The signal arrives during step + 1 (not a periodic save): that step ends, is saved, and the run exits as a
    # process ended by the signal does in a shell (128 + its number).
    assert stopped.returncode == 128 + signal.Signals[signal_name], stopped.stderr
    last = first_run(tmp_path) / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == step + 1
    assert "Traceback" not in stopped.stderr and "Test metric" not in stopped.stdout
    (line,) = stopped.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"{signal_name} stopped training at step {step + 1}; {last.relative_to(tmp_path)} holds it")
    resumes_exactly(tmp_path, data, uninterrupted, line.split("Resume with: ")[1])


def test_a_second_ctrl_c_while_saving_leaves_a_whole_checkpoint(data, uninterrupted, tmp_path):
    step = EVERY * 4 + 2
    args = ["fit", "--data.data_dir", str(data), *RUN_ARGS]
    stopped = run_in_subprocess(
        *args,
        "--trainer.callbacks+=tests.helpers.SignalAtStep",
        f"--trainer.callbacks.step={step}",
        "--trainer.callbacks.again_while_saving=true",
        cwd=tmp_path,
    )
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr
    folder = first_run(tmp_path) / "checkpoints"
    assert not list(folder.glob(".*.partial"))
    assert last_checkpoint(tmp_path)["global_step"] == step + 1
    resumes_exactly(tmp_path, data, uninterrupted, stopped.stderr.strip().splitlines()[-1].split("Resume with: ")[1])


def test_ctrl_c_from_outside_at_whatever_moment_it_comes(data, uninterrupted, tmp_path):
    """A real Ctrl-C from another process, at a moment the run does not choose."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lit_mnist", "fit", "--data.data_dir", str(data), *RUN_ARGS,
         "--trainer.log_every_n_steps", "1"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        folder = first_run(tmp_path) / "checkpoints"
        deadline = time.monotonic() + 120
        while not (folder / "last.ckpt").exists() and process.poll() is None:  # training is under way
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT, stderr
    resumes_exactly(tmp_path, data, uninterrupted, stderr.strip().splitlines()[-1].split("Resume with: ")[1])
