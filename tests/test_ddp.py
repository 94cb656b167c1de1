"""Two CPU processes under Lightning's DDP (gloo) train as one process does on the same global batches."""

import pytest
import torch

from tests.conftest import last_checkpoint, reported, run_cli

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


def fit(tiny_data, cwd, *extra):
    result = run_cli("fit", "--data.data_dir", str(tiny_data), *ARGS, *extra, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def test_two_processes_match_one_and_write_once(tiny_data, tmp_path):
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    single_dir.mkdir()
    ddp_dir.mkdir()
    single = fit(tiny_data, single_dir, "--trainer.devices", "1")
    ddp = fit(tiny_data, ddp_dir, "--trainer.strategy", "ddp", "--trainer.devices", "2")

    # Rank 0 alone writes: one run folder, one config, one set of checkpoints, one printed result.
    runs = list((ddp_dir / "lightning_logs").iterdir())
    assert [run.name for run in runs] == ["version_0"]
    assert sorted(p.name for p in (runs[0] / "checkpoints").iterdir() if p.name.startswith("last")) == ["last.ckpt"]
    assert len(list((runs[0] / "checkpoints").glob("best-*.ckpt"))) == 1
    assert (runs[0] / "config.yaml").is_file()
    assert ddp.stdout.count("test/acc") == 1

    # Each process took half of every global batch of 100 and DDP averaged the gradients: the same steps.
    single_state, ddp_state = last_checkpoint(single_dir), last_checkpoint(ddp_dir)
    assert single_state["global_step"] == ddp_state["global_step"] == 20
    for name, weights in single_state["state_dict"].items():
        assert torch.allclose(weights, ddp_state["state_dict"][name], rtol=1e-4, atol=1e-5), name
    accuracy = [reported(run.stdout, "test/acc") for run in (single, ddp)]
    assert accuracy[0] == pytest.approx(accuracy[1], abs=1 / 200)  # at most one of the 200 test images differs
