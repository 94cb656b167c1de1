"""Bad input ends with one clear line on stderr, exit code 2, no traceback and nothing written."""

from pathlib import Path

import pytest
import torch

from lit_mnist.cli import main
from tests.conftest import TINY_ARGS, run_in_subprocess, write_idx


@pytest.fixture(autouse=True)
def plain_argv(monkeypatch):
    """LightningCLI warns when sys.argv (pytest's here) and args are both given."""
    monkeypatch.setattr("sys.argv", ["lit_mnist"])


def run_main(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--model.learning_rate", "-1", "learning_rate"),
        ("--model.learning_rate", "0", "learning_rate"),
        ("--model.learning_rate", "nan", "learning_rate"),
        ("--model.momentum", "1.5", "momentum"),
        ("--model.dropout", "-0.1", "dropout"),
        ("--model.weight_decay", "-1", "weight_decay"),
        ("--model.hidden_sizes", "[500, 0]", "hidden_sizes"),
        ("--data.batch_size", "0", "batch_size"),
        ("--data.batch_size", "-5", "batch_size"),
        ("--data.val_size", "-1", "val_size"),
        ("--data.max_rotation", "-3", "max_rotation"),
        ("--model.init", "uniform", "init"),
        ("--model.optimizer", "adam", "optimizer"),
        ("--trainer.max_steps", "-5", "max_steps"),
        ("--trainer.max_steps", "ten", "max_steps"),
        ("--trainer.max_epochs", "-3", "max_epochs"),
        ("--trainer.log_every_n_steps", "0", "log_every_n_steps"),
        ("--trainer.val_check_interval", "0", "val_check_interval"),
        ("--trainer.limit_train_batches", "-1", "limit_train_batches"),
        ("--trainer.accelerator", "tpu9", "accelerator"),
        ("--seed_everything", "-1", "seed_everything"),
        ("--checkpoint.save_top_k", "-5", "save_top_k"),
    ],
)
def test_bad_option_values(option, value, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", option, value], capsys)
    assert expected in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--model.activation", "relux", "--model.activation relux: must be one of relu, sigmoid, tanh, identity; "
                                        "did you mean relu?"),
        ("--model.init", "kaimng", "--model.init kaimng: must be one of normal, kaiming; did you mean kaiming?"),
    ],
)  # fmt: skip
def test_a_misspelled_choice_gets_the_choices_and_the_nearest_one(option, value, expected, tmp_path, monkeypatch,
                                                                   capsys):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", option, value], capsys)
    assert line.startswith(f"error: {expected} (see ")
    assert list(tmp_path.iterdir()) == []


def test_missing_data_folder_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", "--data.data_dir", "nowhere", "--data.download", "false"], capsys)
    assert "MNIST files missing in nowhere/MNIST/raw" in line
    assert not Path("lightning_logs").exists()


def test_missing_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "missing.yaml" in run_main(["fit", "--config", "missing.yaml"], capsys)


def test_config_that_is_not_yaml(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text("model: [unclosed\n  : : :\n")
    assert "bad.yaml" in run_main(["fit", "--config", "bad.yaml"], capsys)


def test_ckpt_path_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "no such file" in run_main(["test", "--ckpt_path", "gone.ckpt"], capsys)


def test_ckpt_path_corrupt(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("broken.ckpt").write_bytes(b"PK\x03\x04 definitely not a whole zip archive")
    assert "not a readable PyTorch checkpoint" in run_main(["test", "--ckpt_path", "broken.ckpt"], capsys)


def test_ckpt_path_foreign(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, "other.ckpt")
    assert "not a lit_mnist checkpoint" in run_main(["test", "--ckpt_path", "other.ckpt"], capsys)


def test_ckpt_path_that_runs_code_when_unpickled_is_refused(tmp_path, monkeypatch, capsys):
    import os
    import pickle

    monkeypatch.chdir(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    Path("evil.ckpt").write_bytes(pickle.dumps({"state_dict": Exploit()}))
    assert "not a readable PyTorch checkpoint" in run_main(["test", "--ckpt_path", "evil.ckpt"], capsys)
    assert not Path("pwned").exists()


def test_validating_a_run_that_held_no_digits_back(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, "--data.val_size", "0", "--trainer.max_steps", "3",
          "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false"])  # fmt: skip
    capsys.readouterr()
    line = run_main(["validate", "--ckpt_path", "lightning_logs/version_0/checkpoints/last.ckpt"], capsys)
    assert "--data.val_size 0" in line and "use test" in line, line


def test_resume_last_without_an_earlier_run(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, "--ckpt_path", "last"], capsys)
    assert "no run in lightning_logs/" in line


def test_run_folder_that_cannot_be_written(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("taken").write_text("a file where the runs folder should go")
    line = run_main(
        ["fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, "--trainer.logger.save_dir", "taken"], capsys
    )
    assert "cannot create a run folder in taken/lightning_logs" in line
    assert Path("taken").read_text() == "a file where the runs folder should go"


def truncate(raw):
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])


def break_header(raw):
    (raw / "train-labels-idx1-ubyte").write_bytes(b"<html>404 Not Found</html>")


def unpair(raw):
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.zeros(7, dtype=torch.uint8))


def corrupt_official(raw):
    # The official test labels' size (10,000 labels) with other bytes: a damaged download.
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.zeros(10000, dtype=torch.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", torch.zeros(10000, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (truncate, "train-images-idx3-ubyte is truncated"),
        (break_header, "train-labels-idx1-ubyte is not an IDX file"),
        (unpair, "holds 200 images but t10k-labels-idx1-ubyte holds 7 labels"),
        (corrupt_official, "official file's size but not its SHA-256, so it is corrupt"),
    ],
)
def test_damaged_data_files(damage, expected, tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    damage(tiny_data / "MNIST" / "raw")
    line = run_main(["fit", "--data.data_dir", str(tiny_data), *TINY_ARGS], capsys)
    assert expected in line
    assert not Path("lightning_logs").exists()


def test_no_network_for_the_download(tmp_path, monkeypatch, capsys):
    from lit_mnist.data import mnist_files

    def offline(self):
        # What torchvision does without a network: it creates the folder, starts a file, then reports each mirror.
        Path(self.raw_folder).mkdir(parents=True)
        (Path(self.raw_folder) / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\n"
            "Tried https://ossci-datasets.s3.amazonaws.com/mnist/, got:\n"
            "<urlopen error [Errno -3] Temporary failure in name resolution>\n"
        )

    monkeypatch.setattr(mnist_files.MNIST, "download", offline)
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit"], capsys)
    assert line == (
        "error: cannot download MNIST (Temporary failure in name resolution): put the four MNIST files in "
        "data/MNIST/raw/ yourself, or point data_dir (--data.data_dir) at a folder that holds MNIST/raw/"
    )
    assert list(tmp_path.iterdir()) == []  # neither the data folder nor a run folder


def test_resume_last_without_the_tensorboard_logger(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--data.data_dir", str(tiny_data), "--trainer.logger", "false", "--ckpt_path", "last"]
    line = run_main(args, capsys)
    assert "give the path instead" in line


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--model.learning_rate", "-0.01", "error: --model.learning_rate -0.01: must be greater than 0"),
        ("--model.learning_rate", "nan", "error: --model.learning_rate nan: must be greater than 0"),
        ("--model.dropout", "1.5", "error: --model.dropout 1.5: must be at least 0 and less than 1"),
        ("--data.max_rotation", "-3", "error: --data.max_rotation -3: must be at least 0"),
        ("--data.batch_size", "0", "error: --data.batch_size 0: must be greater than 0"),
    ],
)
def test_a_number_out_of_range_is_said_in_plain_words(option, value, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", option, value], capsys)
    assert line.startswith(expected), line
    assert "restriction" not in line and "Not of type" not in line


def test_a_mistyped_option_suggests_the_nearest_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", "--model.learnig_rate", "0.1"], capsys)
    assert "--model.learnig_rate" in line and "did you mean --model.learning_rate?" in line, line


def test_data_dir_given_as_the_raw_folder_itself_finds_the_files(tiny_data, tmp_path, monkeypatch, capsys):
    from lit_mnist.data import MNISTDataModule

    datamodule = MNISTDataModule(str(tiny_data / "MNIST" / "raw"), download=False, val_size=100)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.train_data[1]) == 500


def test_files_directly_in_data_dir_are_told_where_they_belong(tiny_data, tmp_path, monkeypatch, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for file in (tiny_data / "MNIST" / "raw").iterdir():
        (flat / file.name).write_bytes(file.read_bytes())
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", "--data.data_dir", str(flat), *TINY_ARGS], capsys)
    assert line == (
        f"error: the MNIST files are in {flat} itself, but they belong in {flat}/MNIST/raw/: move them there, or "
        "point data_dir (--data.data_dir) at the folder that holds MNIST/raw/"
    )
    assert sorted(path.name for path in flat.iterdir()) == sorted(
        path.name for path in (tiny_data / "MNIST" / "raw").iterdir()
    )


def test_an_error_during_the_progress_bar_starts_on_a_line_of_its_own(tiny_data, tmp_path):
    result = run_in_subprocess("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, "--model.learning_rate", "1e6",
                               "--trainer.log_every_n_steps", "2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 3 and result.stderr.startswith("error: training diverged at step"), result.stderr
    # The bar (on stdout) was drawn, and its line ended: in a terminal the error (on stderr) starts a line.
    bar = result.stdout.rsplit("Epoch 0", 1)
    assert len(bar) == 2 and bar[1].endswith("\n") and "\n" not in bar[1][:-1], bar[-1]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        (["--model.learning_rat", "0.001"], "unrecognized arguments: --model.learning_rat 0.001; did you mean "
                                            "--model.learning_rate?"),
        (["--trainer.max_step", "200"], "unrecognized arguments: --trainer.max_step 200; did you mean "
                                        "--trainer.max_steps?"),
        (["--model.lr", "0.001"], "unrecognized arguments: --model.lr 0.001; did you mean --model.learning_rate or "
                                  "--model.lr_schedule?"),
        (["--learning_rate", "0.001"], "unrecognized arguments: --learning_rate 0.001; did you mean "
                                       "--learning_rate_monitor or --model.learning_rate?"),
        (["--model.hidden_sizes", "500,500"], "--model.hidden_sizes 500,500: give a list in brackets, such as "
                                              "[500,500]"),
    ],
)  # fmt: skip
def test_an_option_is_taken_by_its_full_name_only_and_a_near_miss_gets_did_you_mean(typed, expected, tmp_path,
                                                                                    monkeypatch, capsys):  # fmt: skip
    """argparse took --model.learning_rat for --model.learning_rate, and blamed --model.lr on --model.lr_schedule."""
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", *typed], capsys)
    assert line.startswith(f"error: {expected} (see ")
    assert list(tmp_path.iterdir()) == []


def test_batch_norm_on_batches_of_one_image_gets_one_line(tmp_path, monkeypatch, capsys):
    """BatchNorm normalises over the batch: one image has nothing to normalise over, and torch fails mid-run."""
    monkeypatch.chdir(tmp_path)
    line = run_main(["fit", "--model.batch_norm", "true", "--data.batch_size", "1"], capsys)
    assert line == ("error: --model.batch_norm true needs batches of at least 2 images to normalise over; give a "
                    "--data.batch_size of 2 or more")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
