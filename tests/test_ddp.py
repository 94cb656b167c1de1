"""Two CPU processes under Lightning's DDP (gloo) train as one process does on the same global batches."""

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import (
    REPO,
    finish_all,
    free_port,
    last_checkpoint,
    reported,
    run_in_subprocess,
    write_tiny_mnist,
)

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

# Kaiming init and a moderate rate keep the arithmetic tame, so the only difference between the runs is the order
# in which floating-point sums are taken.
ARGS = [
    "--model.init",
    "kaiming",
    "--model.learning_rate",
    "0.01",
    "--data.val_size",
    "100",
    "--data.batch_size",
    "100",
    "--trainer.max_steps",
    "20",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.accelerator",
    "cpu",
]


def fit(tiny_data, cwd, *extra, env=None):
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *ARGS, *extra, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return result


def test_two_processes_match_one_and_write_once(tiny_data, tmp_path):
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    single_dir.mkdir()
    ddp_dir.mkdir()
    single = fit(tiny_data, single_dir, "--trainer.devices", "1")
    ddp = fit(tiny_data, ddp_dir, "--trainer.strategy", "ddp", "--trainer.devices", "2",
              "--trainer.callbacks+=tests.helpers.ProcessGroupAtExit")  # fmt: skip

    # Rank 0 alone writes: one run folder, one config, one set of checkpoints, one printed result.
    runs = list((ddp_dir / "lightning_logs").iterdir())
    assert [run.name for run in runs] == ["version_0"]
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir() if p.name.startswith("last")) == ["last.ckpt"]
    assert len(list((runs[0] / "checkpoints").glob("best-*.ckpt"))) == 1
    assert (runs[0] / "config.yaml").is_file()
    assert ddp.stdout.count("acc/test") == 1
    # Each process destroyed its process group before it exited, as torch asks.
    assert ddp.stdout.count("process group alive at exit: False") == 2, ddp.stdout

    # Each process took half of every global batch of 100 and DDP averaged the gradients: the same steps.
    single_state, ddp_state = last_checkpoint(single_dir), last_checkpoint(ddp_dir)
    assert single_state["global_step"] == ddp_state["global_step"] == 20
    for name, weights in single_state["state_dict"].items():
        assert torch.allclose(weights, ddp_state["state_dict"][name], rtol=1e-4, atol=1e-5), name
    accuracy = [reported(run.stdout, "acc/test") for run in (single, ddp)]
    assert accuracy[0] == pytest.approx(accuracy[1], abs=1 / 200)  # at most one of the 200 test images differs


def test_uneven_shares_train_as_one_process_and_a_one_digit_last_batch_is_counted_once(tmp_path):
    """Batches of 101 over 3 processes: shares of 34, 34 and 33 digits, each weighed by its size in the step; 203 test
    digits leave a last batch of 1, fewer than the processes, which is counted once and hands no process nothing."""
    data = write_tiny_mnist(tmp_path / "data", train=600, test=203)
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    single_dir.mkdir()
    ddp_dir.mkdir()
    uneven = ["--data.batch_size", "101", "--model.hidden_sizes", "[64]"]
    single = fit(data, single_dir, *uneven, "--trainer.devices", "1")
    ddp = fit(data, ddp_dir, *uneven, "--trainer.strategy", "ddp", "--trainer.devices", "3",
              env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    single_state, ddp_state = last_checkpoint(single_dir), last_checkpoint(ddp_dir)
    assert single_state["global_step"] == ddp_state["global_step"] == 20
    for name, weights in single_state["state_dict"].items():
        assert torch.allclose(weights, ddp_state["state_dict"][name], rtol=1e-4, atol=1e-5), name
    assert reported(ddp.stdout, "acc/test") == pytest.approx(reported(single.stdout, "acc/test"), abs=1 / 203)
    assert reported(ddp.stdout, "loss/test") == pytest.approx(reported(single.stdout, "loss/test"), rel=1e-3)


# Dropout and augmentation both draw random numbers while training, and BatchNorm keeps running statistics;
# last.ckpt is saved every 7 steps.
# fmt: off
RANDOM_ARGS = [
    "--model.hidden_sizes", "[32]", "--model.dropout", "0.2", "--model.batch_norm", "true", "--model.init", "kaiming",
    "--model.optimizer", "adamw", "--model.learning_rate", "0.01", "--data.max_rotation", "10",
    "--data.max_shift", "0.1", "--data.elastic_alpha", "10", "--data.val_size", "100", "--trainer.max_steps", "21",
    "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp",
    "--trainer.devices", "2", "--checkpoint.save_last", "false", "--last_checkpoint.every_n_train_steps", "7",
]
# fmt: on


def test_each_process_draws_its_own_random_numbers_and_a_killed_run_resumes_exactly(tiny_data, tmp_path):
    from lit_mnist.data.augment import random_distortion

    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir()
    interrupted.mkdir()
    args = ["fit", "--data.data_dir", str(tiny_data), *RANDOM_ARGS]
    result = run_in_subprocess(*args, "--trainer.callbacks+=tests.helpers.RecordRNGState", cwd=reference)
    assert result.returncode == 0, result.stderr

    # Each process starts training from a generator state of its own, so the same image gets other distortions.
    states = [torch.load(reference / f"rng-rank{rank}.pt") for rank in (0, 1)]
    assert not torch.equal(*states)
    image = torch.zeros(1, 1, 28, 28)
    image[..., 8:20, 12:16] = 1.0
    distorted = []
    for state in states:
        torch.set_rng_state(state)
        distorted.append(random_distortion(image, 10.0, 0.1, 0.0, elastic_alpha=10.0))
    assert not torch.allclose(*distorted)

    # Killed at step 17 (the last save is at 14, mid-epoch), then resumed: the same weights as the reference.
    killed = run_in_subprocess(*args, "--trainer.callbacks+=tests.helpers.KillAtStep", "--trainer.callbacks.step=17",
                               cwd=interrupted)  # fmt: skip
    assert killed.returncode != 0
    assert last_checkpoint(interrupted)["global_step"] == 14
    resumed = run_in_subprocess(*args, "--ckpt_path", "last", cwd=interrupted)
    assert resumed.returncode == 0, resumed.stderr
    expected, actual = last_checkpoint(reference), last_checkpoint(interrupted)
    assert expected["global_step"] == actual["global_step"] == 21
    for name, weights in expected["state_dict"].items():
        assert torch.equal(weights, actual["state_dict"][name]), f"{name} differs after resuming from step 14"


def test_two_machines_under_torchrun_match_one_process(tiny_data, tmp_path):
    """Two `torchrun --nnodes 2 --nproc_per_node 1` launchers on 127.0.0.1, as two machines would run them (node
    ranks 0 and 1, one rendezvous): one run folder, written by the first machine, and the single process's weights."""
    single_dir, nodes_dir = tmp_path / "single", tmp_path / "nodes"
    single_dir.mkdir()
    nodes_dir.mkdir()
    fit(tiny_data, single_dir, "--trainer.devices", "1")
    port = free_port()
    launchers = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                   "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   "-m", "lit_mnist", "fit", "--data.data_dir", str(tiny_data), *ARGS, "--trainer.strategy", "ddp",
                   "--trainer.devices", "1", "--trainer.num_nodes", "2"]  # fmt: skip
        launchers.append(subprocess.Popen(command, cwd=nodes_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}))  # fmt: skip
    outputs = finish_all(launchers)
    assert [run.name for run in (nodes_dir / "lightning_logs").iterdir()] == ["version_0"]
    assert sum(out.count("acc/test") for out, _ in outputs) == 1  # the first machine's process prints it
    single_state, nodes_state = last_checkpoint(single_dir), last_checkpoint(nodes_dir)
    assert nodes_state["global_step"] == 20
    for name, weights in single_state["state_dict"].items():
        assert torch.allclose(weights, nodes_state["state_dict"][name], rtol=1e-4, atol=1e-5), name
