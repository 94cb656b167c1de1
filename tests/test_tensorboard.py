"""What a real `tensorboard --logdir` server shows of two runs with different settings."""

import pytest

from tests.conftest import TINY_ARGS, get_json, run_cli, tensorboard, write_tiny_mnist

# What TensorBoard's HPARAMS tab shows without a box ticked: its first five hyperparameters and first five metrics.
SHOWN_BY_DEFAULT = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two short runs, the post's and one with other settings, served by TensorBoard on a free loopback port."""
    work = tmp_path_factory.mktemp("runs")
    data = write_tiny_mnist(work / "data")
    for extra in ([], ["--model.init", "kaiming", "--model.learning_rate", "0.003", "--model.optimizer", "adamw"]):
        result = run_cli("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.enable_progress_bar", "false",
                         *extra, cwd=work)  # fmt: skip
        assert result.returncode == 0, result.stderr
    with tensorboard(work / "lightning_logs", ["version_0", "version_1"]) as url:
        yield url


def test_hparams_shows_the_settings_that_differ_and_the_test_results_first(server):
    experiment = get_json(f"{server}/data/plugin/hparams/experiment", {"experimentName": ""})
    shown = [info["name"] for info in experiment["hparamInfos"][:SHOWN_BY_DEFAULT]]
    assert {"init", "learning_rate", "optimizer"} <= set(shown)
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"][:SHOWN_BY_DEFAULT]]
    assert {"acc/test", "loss/test", "acc/train", "acc/val"} <= set(metrics)
    names = {info["name"] for info in experiment["hparamInfos"]}
    assert not {"data_dir", "download"} & names


def test_time_series_start_with_the_accuracy_and_loss_curves(server):
    tags = get_json(f"{server}/data/plugin/scalars/tags")
    for run in ("version_0", "version_1"):
        assert sorted(tags[run]) == ["acc/test", "acc/train", "acc/val", "loss/test", "loss/train", "loss/val"]
    # TensorBoard groups cards by the part before "/", in alphabetical order: acc, loss, then test (the figures).
    images = get_json(f"{server}/data/plugin/images/tags")
    assert sorted(images["version_0"]) == ["test/confusion_matrix", "test/misclassified"]
