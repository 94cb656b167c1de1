"""`predict` on the user's own image files, run as a user runs it."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_mnist.data.images import read_digit
from lit_mnist.model import MNISTClassifier
from tests.conftest import REPO, TINY_ARGS, bomb_png, first_run, run_in_process, write_tiny_mnist

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data


def write_digit_png(path: Path, seed: int) -> None:
    image = torch.zeros(120, 90, dtype=torch.uint8)
    image[20 + seed : 100, 30 : 50 + seed] = 255
    Image.fromarray((255 - image).numpy()).save(path)


def predicted_lines(stdout: str) -> dict[str, tuple[int, float]]:
    lines = {}
    for line in stdout.splitlines():
        if line.startswith("note: "):
            continue
        file, _, rest = line.rpartition(": ")
        digit, probability = rest.split(" ")
        lines[Path(file).name] = (int(digit), float(probability.strip("(%)")) / 100)
    return lines


def test_a_folder_gets_one_line_per_image_and_the_same_as_csv(checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        write_digit_png(images / f"digit{index}.png", index)
    result = run_in_process(
        "predict",
        "--ckpt_path",
        str(checkpoint),
        "--data.predict_path",
        str(images),
        "--output",
        "out.csv",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    printed = predicted_lines(result.stdout)
    assert sorted(printed) == ["digit0.png", "digit1.png", "digit2.png"]
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["file"]).name for row in rows] == sorted(printed)
    saved = torch.load(checkpoint, weights_only=True)
    settings = {name: value for name, value in saved["hyper_parameters"].items() if not name.startswith("_")}
    network = MNISTClassifier(**settings)
    network.load_state_dict(saved["state_dict"])
    network.eval()
    for row in rows:
        digit, probability = printed[Path(row["file"]).name]
        assert int(row["digit"]) == digit and float(row["probability"]) == pytest.approx(probability, abs=6e-4)
        # What the checkpoint's network says of the picture as predict prepares it, computed here.
        with torch.no_grad():
            expected = network(read_digit(Path(row["file"])).float().div(255)[None, None]).softmax(dim=1)[0]
        assert digit == int(expected.argmax())
        assert float(row["probability"]) == pytest.approx(float(expected.max()), abs=1e-6)
    assert not (tmp_path / "lightning_logs").exists()  # predicting makes no run folder


def test_a_file_that_is_not_an_image_gets_one_line_and_the_others_their_predictions(checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_digit_png(images / "good.png", 0)
    (images / "notes.txt").write_text("shopping list")
    result = run_in_process("predict", "--ckpt_path", str(checkpoint), "--data.predict_path", str(images), cwd=tmp_path)
    assert result.returncode == 1
    assert list(predicted_lines(result.stdout)) == ["good.png"]
    errors = [line for line in result.stderr.splitlines() if "notes.txt" in line]
    assert len(errors) == 1 and "not an image" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data.predict_path", "images"], "predict needs a trained network"),
        (["--ckpt_path", "CKPT"], "--data.predict_path"),
        (["--ckpt_path", "CKPT", "--data.predict_path", "nowhere"], "no such file or folder"),
        (["--ckpt_path", "CKPT", "--data.predict_path", "images", "--output", "taken.csv"], "already exists"),
    ],
)
def test_bad_predict_input_gets_one_line_and_nothing_is_overwritten(checkpoint, tmp_path, args, message):
    (tmp_path / "images").mkdir()
    write_digit_png(tmp_path / "images" / "digit.png", 0)
    (tmp_path / "taken.csv").write_text("precious")
    args = [str(checkpoint) if arg == "CKPT" else arg for arg in args]
    result = run_in_process("predict", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert (tmp_path / "taken.csv").read_text() == "precious"


# Runs a command and prints its exit code and its peak resident memory in KiB (wait4 reports the child's own peak).
PEAK_MEMORY = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_a_folder_of_bad_files_and_ten_thousand_images_stays_within_memory(checkpoint, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for index in range(10_000):
        write_digit_png(images / f"digit{index:05}.png", index % 10)
    # Over twice Pillow's limit, which it refuses; over its limit, which Pillow only warns of.
    (images / "bomb-400-megapixels.png").write_bytes(bomb_png(20_000, 20_000))
    (images / "bomb-100-megapixels.png").write_bytes(bomb_png(10_000, 10_000))
    (images / "empty.png").write_bytes(b"")
    (images / "loop.png").symlink_to(images / "loop.png")
    assert (images / "bomb-400-megapixels.png").stat().st_size < 1_000_000
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, sys.executable, "-m", "lit_mnist", "predict", "--ckpt_path",
         str(checkpoint), "--data.predict_path", str(images), "--output", "out.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    code, peak_kib = (int(value) for value in result.stdout.strip().splitlines()[-1].split())
    assert code == 1, result.stderr  # some files were skipped, which the exit status tells scripts
    assert peak_kib < 1.5 * 2**20, f"peak memory {peak_kib / 2**10:.0f} MiB"
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 4 and "Traceback" not in result.stderr, result.stderr
    expected = {
        "bomb-400-megapixels.png": "too large to read safely",
        "bomb-100-megapixels.png": "too large to read safely",
        "empty.png": "not an image",
        "loop.png": "not a regular file",
    }
    for name, reason in expected.items():
        (line,) = [line for line in errors if f"/{name}: " in line]
        assert line.startswith("error: ") and reason in line and line.endswith("; skipped"), line
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10_000 and {Path(row["file"]).name for row in rows} == {
        f"digit{index:05}.png" for index in range(10_000)
    }


def test_the_posts_network_is_sure_of_everything_and_predict_says_why(checkpoint, tmp_path):
    """Weights from N(0, 1), as the post draws them, give logits in the thousands: every picture gets 100.0%, its
    mistakes too. predict says so; a network with He initialisation (the checkpoint fixture's) gets no such note."""
    data = write_tiny_mnist(tmp_path / "data")
    fitted = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.enable_progress_bar", "false",
                            cwd=tmp_path)  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    posts = first_run(tmp_path) / "checkpoints" / "last.ckpt"
    write_digit_png(tmp_path / "digit.png", 0)
    results = {
        name: run_in_process("predict", "--ckpt_path", str(path), "--data.predict_path", "digit.png", cwd=tmp_path)
        for name, path in (("post's", posts), ("He", checkpoint))
    }
    assert all(result.returncode == 0 for result in results.values())
    assert predicted_lines(results["post's"].stdout)["digit.png"][1] == 1.0
    assert results["post's"].stdout.splitlines()[-1].startswith("note: this network's weights were drawn from N(0, 1)")
    assert "note:" not in results["He"].stdout
