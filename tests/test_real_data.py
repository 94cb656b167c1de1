"""On the real MNIST files (../shared/data in CI): the split, and the post's experiment end to end."""

import torch

from lit_mnist.data import MNISTDataModule
from tests.conftest import REPO, reported, run_cli


def test_the_split_and_label_counts_are_mnists(real_data):
    datamodule = MNISTDataModule(str(real_data))
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    assert len(datamodule.train_data[1]) == 55000 and len(datamodule.val_data[1]) == 5000
    test_labels = datamodule.test_data[1]
    assert torch.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert sum(len(labels) for _, labels in datamodule.test_dataloader()) == 10000


def test_seed_config_lands_in_the_posts_range(real_data, tmp_path):
    """The post's 5,000 steps; it reports 85.75% test accuracy (our seeds: see the README)."""
    result = run_cli(
        "fit", "--config", str(REPO / "configs" / "seed.yaml"), "--data.data_dir", str(real_data),
        "--trainer.enable_progress_bar", "false", cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    accuracy = reported(result.stdout, "test/acc")
    assert 0.80 <= accuracy <= 0.92
