"""`lr_find`: Lightning's learning-rate range test as a subcommand, run as a user runs it."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import run_in_process, write_tiny_mnist

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

# No process boundary is under test here: the command line runs as main(args), in the test's own process.
run_cli = run_in_process


def test_lr_find_prints_a_rate_and_saves_the_plot_beside_the_run(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_cli(
        "lr_find",
        "--data.data_dir",
        str(data),
        "--data.val_size",
        "100",
        "--num_training",
        "30",
        "--model.init",
        "kaiming",
        "--model.optimizer",
        "adamw",
        "--early_stop_threshold",
        "null",
        "--min_lr",
        "0.002",
        "--max_lr",
        "0.02",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rate = float(result.stdout.split("Suggested learning rate: ")[1].split()[0])
    # The finder tried only this narrow range, well away from its defaults (1e-6 to 1): the options reached it.
    assert 0.002 <= rate <= 0.02
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "lr_find.png").stat().st_size > 10_000
    assert str(Path("lightning_logs") / "version_0" / "lr_find.png") in result.stdout
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert "lr_find" in events.Tags()["images"]
    assert not list(tmp_path.glob(".lr_find*"))  # Lightning's temporary checkpoint is gone


def test_an_empty_range_gets_one_line_and_writes_nothing(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_cli("lr_find", "--data.data_dir", str(data), "--min_lr", "0.1", "--max_lr", "0.01", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --min_lr (0.1) must be smaller than --max_lr (0.01)"
    assert not (tmp_path / "lightning_logs").exists()
