import stat
from pathlib import Path

import pytest
import torch

from lit_mnist.data import MNISTDataModule, mnist_files
from lit_mnist.run.errors import UserError
from tests.conftest import write_idx


def raw(data_dir: Path) -> Path:
    return data_dir / "MNIST" / "raw"


def test_well_formed_files_pass(tiny_data):
    mnist_files.check_files(tiny_data)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(UserError, match="MNIST files missing in .*train-images-idx3-ubyte"):
        mnist_files.check_files(tmp_path)


def test_truncated_file(tiny_data):
    path = raw(tiny_data) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="train-images-idx3-ubyte is truncated"):
        mnist_files.check_files(tiny_data)


def test_header_too_short(tiny_data):
    (raw(tiny_data) / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte is truncated.*too short for an IDX header"):
        mnist_files.check_files(tiny_data)


def test_not_an_idx_file(tiny_data):
    (raw(tiny_data) / "train-labels-idx1-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(UserError, match="train-labels-idx1-ubyte is not an IDX file"):
        mnist_files.check_files(tiny_data)


def test_images_and_labels_must_pair_up(tiny_data):
    write_idx(raw(tiny_data) / "t10k-labels-idx1-ubyte", torch.zeros(7, dtype=torch.uint8))
    with pytest.raises(UserError, match="holds 200 images but t10k-labels-idx1-ubyte holds 7 labels"):
        mnist_files.check_files(tiny_data)


def test_official_size_with_other_bytes_is_reported_as_corrupt(tiny_data):
    # A labels file as large as the official test labels (10,000) but with other content.
    write_idx(raw(tiny_data) / "t10k-labels-idx1-ubyte", torch.zeros(10000, dtype=torch.uint8))
    write_idx(raw(tiny_data) / "t10k-images-idx3-ubyte", torch.zeros(10000, 28, 28, dtype=torch.uint8))
    with pytest.raises(UserError, match="official file's size but not its SHA-256, so it is corrupt"):
        mnist_files.check_files(tiny_data)


def test_download_failure_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n<urlopen error [Errno -3]>")

    monkeypatch.setattr(mnist_files.MNIST, "download", offline)
    expected = r"cannot download MNIST \(\[Errno -3\]\): put the four MNIST files in .*/MNIST/raw/ yourself"
    with pytest.raises(UserError, match=expected):
        MNISTDataModule(str(tmp_path)).prepare_data()


def test_present_files_are_read_without_writing_anything(tiny_data):
    before = sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*"))
    for path in [tiny_data, *tiny_data.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        datamodule = MNISTDataModule(str(tiny_data), val_size=100)
        datamodule.prepare_data()
        datamodule.setup("fit")
        datamodule.setup("test")
    finally:
        for path in [tiny_data, *tiny_data.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*")) == before


def test_split_is_the_posts_and_every_test_image_counts(tiny_data):
    datamodule = MNISTDataModule(str(tiny_data), batch_size=64, val_size=100)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    all_train = mnist_files.MNIST(str(tiny_data), train=True)
    val_images = torch.cat([images for images, _ in datamodule.val_dataloader()])
    train_images = torch.cat([images for images, _ in datamodule.train_dataloader()])
    test_labels = torch.cat([labels for _, labels in datamodule.test_dataloader()])
    assert torch.equal(val_images, all_train.data[:100])  # the first images are held out, as TF's input_data did
    assert len(train_images) == 500
    assert len(test_labels) == 200  # 200 = 3 * 64 + 8: the partial last batch is kept


def gzip_files(data_dir: Path, names: list[str]) -> dict[str, bytes]:
    """Replace each named file by its .gz, as most mirrors serve them; returns the original bytes."""
    import gzip

    originals = {}
    for name in names:
        path = raw(data_dir) / name
        originals[name] = path.read_bytes()
        (raw(data_dir) / f"{name}.gz").write_bytes(gzip.compress(originals[name]))
        path.unlink()
    return originals


@pytest.mark.parametrize("gzipped", [list(mnist_files.OFFICIAL_FILES), ["train-images-idx3-ubyte"]],
                         ids=["all four", "one of them"])  # fmt: skip
def test_files_downloaded_by_hand_as_gz_are_read(tiny_data, gzipped):
    originals = gzip_files(tiny_data, gzipped)
    datamodule = MNISTDataModule(str(tiny_data), download=False, val_size=100)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.train_data[1]) == 500
    for name, content in originals.items():
        assert (raw(tiny_data) / name).read_bytes() == content  # decompressed beside it
        assert (raw(tiny_data) / f"{name}.gz").is_file()  # the user's file stays


def test_a_damaged_gz_file_is_named(tiny_data):
    gzip_files(tiny_data, ["t10k-labels-idx1-ubyte"])
    packed = raw(tiny_data) / "t10k-labels-idx1-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:20])
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte\.gz cannot be decompressed .*replace it"):
        MNISTDataModule(str(tiny_data), download=False).prepare_data()
    assert sorted(path.name for path in raw(tiny_data).iterdir() if "t10k-labels" in path.name) == [packed.name]
