"""Runs that end badly end well: a diverging loss, and files that cannot be written."""

import math
import re
import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_mnist.run.stopping import finite_weights
from tests.conftest import TINY_ARGS, first_run, last_checkpoint, run_in_process, run_in_subprocess

pytestmark = pytest.mark.slow  # a full disk (a file-size limit) and a signal need processes of their own

QUIET = ["--trainer.enable_progress_bar", "false"]
FILE_TOO_LARGE = "File too large"


def one_error_line(result) -> str:
    """The run's last line on stderr, after checking it is the only thing a user sees of the failure."""
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(tensor).all() for tensor in checkpoint["state_dict"].values())


@pytest.mark.parametrize(
    "learning_rate, save_every, caught_by",
    [("1e30", "10", "the training loss is nan"), ("1", "1", "the weights are no longer finite numbers")],
)
def test_a_diverging_run_stops_with_one_line_and_no_test_pass(
    tiny_data, tmp_path, learning_rate, save_every, caught_by
):
    result = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, "--trainer.max_steps", "200",
                            "--model.learning_rate", learning_rate, "--trainer.log_every_n_steps", "5",
                            "--last_checkpoint.every_n_train_steps", save_every, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 3, result.stderr  # not 2, a usage error
    line = one_error_line(result)
    rate = re.escape(f"{float(learning_rate):g}")
    match = re.fullmatch(r"error: training diverged at step (\d+): (.*); try a lower --model.learning_rate than "
                         rf"{rate} \(say .*\), or --divergence.stop false to watch it go on; (.*)", line)  # fmt: skip
    assert match and match.group(2).startswith(caught_by), line
    stopped_at = int(match.group(1))
    assert stopped_at <= 10  # within one logging interval of the first NaN, not 200 steps of it
    assert "Test metric" not in result.stdout
    run = first_run(tmp_path)
    if save_every == "1":  # last.ckpt holds the step before the weights went bad, with finite weights
        assert match.group(3) == f"{run.relative_to(tmp_path)}/checkpoints/last.ckpt holds step {stopped_at - 1}, " \
                                  "the last state saved"  # fmt: skip
        checkpoint = last_checkpoint(tmp_path)
        assert checkpoint["global_step"] == stopped_at - 1 and finite(checkpoint)
    else:
        assert match.group(3) == "no checkpoint was saved before" and not (run / "checkpoints").exists()
    # TensorBoard holds the finite curve up to the divergence, and no test figures.
    events = EventAccumulator(str(run))
    events.Reload()
    losses = events.Scalars("loss/train") if "loss/train" in events.Tags()["scalars"] else []
    assert all(math.isfinite(event.value) and event.step < stopped_at for event in losses)
    assert "acc/test" not in events.Tags()["scalars"]


def test_the_divergence_check_can_be_switched_off_to_watch_it(tiny_data, tmp_path):
    result = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET,
                            "--model.learning_rate", "1e30", "--divergence.stop", "false", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Test metric" in result.stdout and "diverged" not in result.stderr


def test_a_checkpoint_that_cannot_be_written_ends_the_run_with_one_line(tiny_data, tmp_path):
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, cwd=tmp_path,
                               file_size_limit=1_000_000)  # the network's checkpoint takes 2.6 MB  # fmt: skip
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    folder = first_run(tmp_path) / "checkpoints"
    assert re.fullmatch(rf"error: cannot write the checkpoint {folder.relative_to(tmp_path)}/\S+\.ckpt: "
                        f"{FILE_TOO_LARGE}", line), line  # fmt: skip
    assert not [path for path in folder.iterdir() if path.name.endswith(".partial")]


def test_a_failed_save_leaves_the_previous_last_checkpoint_whole(tiny_data, tmp_path):
    first = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    folder = first_run(tmp_path) / "checkpoints"
    before = (folder / "last.ckpt").read_bytes()
    # The file-size limit, as on a full disk, needs a process of its own.
    more = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, "--trainer.max_steps", "60",
                             "--ckpt_path", "last", cwd=tmp_path, file_size_limit=1_000_000)  # fmt: skip
    assert more.returncode == 4, more.stderr
    assert FILE_TOO_LARGE in one_error_line(more)
    assert (folder / "last.ckpt").read_bytes() == before
    assert sorted(path.name for path in folder.iterdir()) == sorted(path.name for path in folder.iterdir()
                                                                    if not path.name.endswith(".partial"))  # fmt: skip


def test_an_event_file_that_cannot_be_written_ends_the_run_with_one_line(tiny_data, tmp_path):
    no_checkpoints = ["--trainer.enable_checkpointing", "false"]
    limit = 150_000  # a few pictures of the first layer
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, *no_checkpoints,
                               cwd=tmp_path, file_size_limit=limit)  # fmt: skip
    assert result.returncode == 4, result.stderr
    line = one_error_line(result)
    assert re.fullmatch(rf"error: cannot write lightning_logs/version_0/events\.out\.tfevents\.\S+: {FILE_TOO_LARGE}",
                        line), line  # fmt: skip


def test_a_config_that_cannot_be_written_ends_the_run_with_one_line(tiny_data, tmp_path):
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, cwd=tmp_path,
                               file_size_limit=1000)  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert one_error_line(result) == f"error: cannot write lightning_logs/version_0/config.yaml: {FILE_TOO_LARGE}"


def test_sigterm_during_the_test_pass_exits_as_a_signal_does(tiny_data, tmp_path):
    """After training there is nothing to save; Lightning's own handler stops the test, and the exit code says so."""
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET,
                               "--trainer.callbacks+=tests.helpers.SignalAtTestBatch", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 143, result.stderr
    assert one_error_line(result) == "error: stopped by SIGTERM"
    assert last_checkpoint(tmp_path)["global_step"] == 30


@pytest.mark.parametrize("signal_name, moment", [("SIGINT", "sanity_check"), ("SIGTERM", "setup")])
def test_a_signal_before_the_first_step_ends_the_run_with_one_line(tiny_data, tmp_path, signal_name, moment):
    """Before training there is nothing to save: the run ends at once, as a process ended by the signal does."""
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET,
                     "--trainer.callbacks+=tests.helpers.SignalBeforeTraining", f"--trainer.callbacks.moment={moment}",
                     f"--trainer.callbacks.signal_name={signal_name}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 128 + signal.Signals[signal_name], result.stderr
    assert one_error_line(result) == f"{signal_name} stopped the run before its first step: nothing was saved"
    assert not list(tmp_path.glob("lightning_logs/*/checkpoints/*.ckpt"))


def test_the_signal_handlers_are_the_callers_again_after_a_run(tiny_data, tmp_path):
    """fit's handlers nest with Lightning's own: after a run, stopped or not, a Ctrl-C is the caller's again (a
    notebook's, the next trial of a sweep)."""
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    stopped = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET,
                             "--trainer.callbacks+=tests.helpers.SignalBeforeTraining", cwd=tmp_path)  # fmt: skip
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr
    assert {number: signal.getsignal(number) for number in before} == before
    finished = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *QUIET, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert {number: signal.getsignal(number) for number in before} == before


def test_finite_weights_sees_every_nan_and_infinity_and_nothing_else():
    network = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    assert finite_weights(network)
    with torch.no_grad():
        network[1].weight.fill_(3e38)  # finite weights whose sum is past float32's range
        assert finite_weights(network)
        for bad in (math.nan, math.inf, -math.inf):
            network[0].bias[1] = bad
            assert not finite_weights(network), bad
        network[0].bias[1] = 0.0
        network[0].weight[0, 0], network[0].weight[1, 1] = math.inf, -math.inf  # a sum of NaN
        assert not finite_weights(network)
