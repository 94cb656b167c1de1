"""`lr_find`: Lightning's learning-rate range test as a subcommand, run as a user runs it."""

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import first_run, run_in_process, write_tiny_mnist

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data


def test_lr_find_prints_a_rate_and_saves_the_plot_beside_the_run(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_process(
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
    assert "where the loss fell fastest: a place to start" in result.stdout  # how to read it, beside the rate
    run = first_run(tmp_path)
    assert (run / "lr_find.png").stat().st_size > 10_000
    assert str(Path("lightning_logs") / "version_0" / "lr_find.png") in result.stdout
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert "lr_find" in events.Tags()["images"]
    assert not list(tmp_path.glob(".lr_find*"))  # Lightning's temporary checkpoint is gone


def test_an_empty_range_gets_one_line_and_writes_nothing(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    rates = ["--min_lr", "0.1", "--max_lr", "0.01"]
    result = run_in_process("lr_find", "--data.data_dir", str(data), *rates, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --min_lr (0.1) must be smaller than --max_lr (0.01)"
    assert not (tmp_path / "lightning_logs").exists()


def test_the_plot_reads_the_loss_on_a_log_scale_and_the_suggestion_says_how_to_read_it():
    from lightning.pytorch.tuner.lr_finder import _LRFinder

    from lit_mnist.trainer import lr_find_figure

    # The post's setup: losses in the thousands, with one spike of 150,000 that a linear axis flattens the rest under.
    finder = _LRFinder(mode="exponential", lr_min=1e-6, lr_max=1.0, num_training=5)
    finder.results = {"lr": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], "loss": [3000.0, 900.0, 150_000.0, 400.0, 80.0]}
    axes = lr_find_figure(finder, suggestion=1e-5).axes[0]
    assert axes.get_yscale() == "log"
    assert axes.get_ylim()[0] < 80 < 150_000 < axes.get_ylim()[1]
