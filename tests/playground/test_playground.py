"""The TensorFlow Playground's spiral: its data as the Playground defines it, the post's three networks on it, the
Playground's pictures in TensorBoard, and one line for each bad input."""

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_mnist.playground import SpiralDataModule
from lit_mnist.playground.cli import names_the_spiral
from lit_mnist.playground.spiral import FEATURES, features, plane_grid, spiral
from tests.conftest import REPO, first_run, reported, run_in_process, tensorboard

CONFIGS = REPO / "configs"
ALL_FEATURES = "[x1,x2,x1_squared,x2_squared,x1_times_x2,sin_x1,sin_x2]"
# A spiral run of a few steps, for the tests of its plumbing.
# A constant learning rate: a one-cycle schedule is planned for its steps, and the run is continued past them.
SHORT = ["--config", str(CONFIGS / "spiral_deep.yaml"), "--trainer.max_steps", "50", "--model.lr_schedule", "constant",
         "--trainer.enable_progress_bar", "false", "--playground.every_n_steps", "20"]  # fmt: skip


@settings(max_examples=30, deadline=None)
@given(num_samples=st.integers(4, 600), noise=st.floats(0, 0.5), seed=st.integers(0, 2**31))
def test_the_spiral_is_the_playgrounds(num_samples, noise, seed):
    """Point i of n on each spiral lies within noise (on each axis) of radius 5 i / n and angle 1.75 * 2 pi i / n, the
    second spiral turned by pi; n = num_samples // 2 points each, the first labelled 1."""
    points, labels = spiral(num_samples, noise, torch.Generator().manual_seed(seed))
    n = num_samples // 2
    assert points.shape == (2 * n, 2) and labels.tolist() == [1] * n + [0] * n
    i = torch.arange(n, dtype=torch.float64)
    for half, delta in ((slice(0, n), 0.0), (slice(n, 2 * n), math.pi)):
        angle = 1.75 * i / n * 2 * math.pi + delta
        exact = torch.stack((i / n * 5 * torch.sin(angle), i / n * 5 * torch.cos(angle)), dim=1).float()
        assert (points[half] - exact).abs().max() <= noise + 1e-5


def test_each_feature_is_the_playgrounds():
    points = torch.randn(50, 2) * 3
    x1, x2 = points[:, 0], points[:, 1]
    expected = {"x1": x1, "x2": x2, "x1_squared": x1**2, "x2_squared": x2**2, "x1_times_x2": x1 * x2,
                "sin_x1": torch.sin(x1), "sin_x2": torch.sin(x2)}  # fmt: skip
    assert set(expected) == set(FEATURES)
    inputs = features(points, list(reversed(FEATURES)))
    for column, name in enumerate(reversed(FEATURES)):
        torch.testing.assert_close(inputs[:, column], expected[name])


def test_the_plane_is_the_playgrounds_from_minus_6_to_6_with_x2_upwards():
    grid = plane_grid(4).view(4, 4, 2)
    assert grid[0, 0].tolist() == [-4.5, 4.5] and grid[-1, -1].tolist() == [4.5, -4.5]


def test_the_data_module_splits_as_the_playground_and_gives_the_same_points_each_time():
    data = SpiralDataModule(features=["x1", "sin_x2"], noise=0.3, train_percent=30)
    assert data.input_shape == [2] and data.num_classes == 2
    data.setup("fit")
    first = data.train_points.clone(), data.train_labels.clone()
    assert len(data.train_labels) == 150 and len(data.test_labels) == 350
    data.setup("test")  # a second setup, as a second fit or the test pass makes
    assert torch.equal(data.train_points, first[0]) and torch.equal(data.train_labels, first[1])
    other = SpiralDataModule(features=["x1", "sin_x2"], noise=0.3, train_percent=30)
    other.setup("fit")
    assert torch.equal(other.train_points, first[0])  # another run, whatever its seed, learns the same spiral
    (inputs, _), *_ = iter(data.test_dataloader())
    torch.testing.assert_close(inputs, features(data.test_points[:10], ["x1", "sin_x2"]))


@pytest.mark.parametrize(
    "options, line",
    [
        (["--data.features", "[x1,x3]"], "--data.features: unknown feature x3"),
        (["--data.features", "[x1,sinx1]"], "did you mean sin_x1?"),
        (["--data.features", "[]"], "--data.features is empty"),
        (["--data.noise", "0.6"], "--data.noise 0.6: must be between 0 and 0.5"),
        (["--data.noise", "-0.1"], "--data.noise -0.1: must be between 0 and 0.5"),
        (["--data.noise", "nan"], "--data.noise nan: must be a number"),
        (["--data.noise", "1"], "--data.noise 1.0: must be between 0 and 0.5"),
        (["--data.nosie", "0.1"], "unrecognized arguments: --data.nosie; did you mean --data.noise?"),
        (["--data.batch_size", "0"], "--data.batch_size 0: must be greater than 0"),
        (["--model.activation", "rleu"], "--model.activation rleu: must be one of relu, sigmoid, tanh, identity; "
                                         "did you mean relu?"),
    ],
)  # fmt: skip
def test_bad_spiral_options_get_one_line_and_exit_2(tmp_path, options, line):
    result = run_in_process("fit", *SHORT, *options, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert line in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "lightning_logs").exists() or not any((tmp_path / "lightning_logs").iterdir())


def test_a_config_or_data_option_naming_the_spiral_selects_its_command_line(tmp_path):
    assert names_the_spiral(["fit", "--config", str(CONFIGS / "spiral_shallow.yaml")])
    assert names_the_spiral(["fit", "--data", "SpiralDataModule"])
    assert names_the_spiral(["fit", "--data.help", "SpiralDataModule"])
    assert names_the_spiral(["fit", "--data=lit_mnist.playground.SpiralDataModule"])
    nested = tmp_path / "nested.yaml"
    nested.write_text("fit:\n  data:\n    class_path: lit_mnist.playground.SpiralDataModule\n")
    assert names_the_spiral(["--config", str(nested), "fit"])
    assert not names_the_spiral(["fit", "--config", str(CONFIGS / "seed.yaml")])
    assert not names_the_spiral(["fit", "--data.batch_size", "10"])


@pytest.fixture(scope="module")
def spiral_run(tmp_path_factory) -> Path:
    """The deeper network's config, briefly, as a user runs it: its run folder."""
    work = tmp_path_factory.mktemp("spiral")
    result = run_in_process("fit", *SHORT, cwd=work)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # no validation is the spiral's design, not a mistake
    return first_run(work)


def test_tensorboard_shows_the_output_and_every_hidden_unit_over_the_plane(spiral_run):
    events = EventAccumulator(str(spiral_run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    images = events.Tags()["images"]
    assert "playground/output" in images
    assert [event.step for event in events.Images("playground/output")] == [0, 20, 40, 50]
    for layer in range(1, 7):  # six hidden layers of eight units, each in a row of eight pictures
        (*_, last) = events.Images(f"playground/units_layer{layer}")
        assert (last.width, last.height) == (8 * 60 + 7 * 4, 60)
    assert "playground/units_layer7" not in images  # the output layer is the output's picture
    assert {"loss/train", "acc/train", "acc/test"} <= set(events.Tags()["scalars"])
    assert events.Tags()["graph"]
    hparams = (spiral_run / "hparams.yaml").read_text()
    assert "input_shape:\n- 2\n" in hparams and "num_classes: 2" in hparams


def test_a_spiral_run_goes_on_and_its_checkpoint_is_tested_with_its_config(spiral_run):
    work = spiral_run.parent.parent
    last = spiral_run / "checkpoints" / "last.ckpt"
    more = run_in_process("fit", *SHORT, "--trainer.max_steps", "80", "--ckpt_path", "last", cwd=work)
    assert more.returncode == 0, more.stderr
    assert f"Continuing {Path('lightning_logs') / 'version_0'} from step 50" in more.stdout
    assert torch.load(last, weights_only=True)["global_step"] == 80
    tested = run_in_process("test", "--config", str(spiral_run / "config.yaml"), "--ckpt_path", str(last), cwd=work)
    assert tested.returncode == 0, tested.stderr
    assert reported(tested.stdout, "acc/test") == reported(more.stdout, "acc/test")


@pytest.mark.parametrize("command", [["predict", "--data.predict_path", "digit.png"], ["export"], ["serve"],
                                     ["test"], ["fit"]])  # fmt: skip
def test_a_spiral_checkpoint_given_to_an_mnist_command_gets_one_line(spiral_run, command):
    last = spiral_run / "checkpoints" / "last.ckpt"
    result = run_in_process(*command, "--ckpt_path", str(last), cwd=spiral_run)
    assert result.returncode == 2, result.stderr
    assert "trained on the playground's spiral" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "config, passes",
    [("spiral_shallow.yaml", lambda accuracy: accuracy <= 0.75),
     ("spiral_shallow_features.yaml", lambda accuracy: accuracy >= 0.9),
     ("spiral_deep.yaml", lambda accuracy: accuracy >= 0.9)],
)  # fmt: skip
def test_the_posts_three_networks_on_the_spiral(tmp_path, config, passes):
    """The post's contrast, each config run as the docs give it: shallow on X1 and X2 fails, shallow on the
    Playground's features and deeper on X1 and X2 learn the spiral. (Seeds 1 to 3 on the claims page.)"""
    (tmp_path / "configs").symlink_to(CONFIGS)
    result = run_in_process("fit", "--config", f"configs/{config}", "--trainer.enable_progress_bar", "false",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert passes(reported(result.stdout, "acc/test"))


def test_the_playgrounds_pictures_render_in_tensorboard_in_a_real_browser(spiral_run, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        spiral_screenshot(spiral_run.parent, tmp_path / "spiral.png", page)
    finally:
        page.close()
    assert (tmp_path / "spiral.png").stat().st_size > 10_000


def spiral_screenshot(logdir: Path, file: Path, page) -> None:
    """Serve logdir with TensorBoard and save IMAGES, filtered to the Playground's pictures, from ``page``."""
    runs = sorted(path.name for path in logdir.iterdir() if path.is_dir())
    with tensorboard(logdir, runs) as url:
        page.goto(f"{url}/#images&tagFilter=playground")
        page.get_by_text("playground/units_layer1").first.wait_for(state="visible", timeout=60_000)
        page.locator("img").last.wait_for(state="visible", timeout=60_000)
        page.wait_for_timeout(2000)  # let the pictures finish loading
        page.screenshot(path=file, full_page=True)


if (
    __name__ == "__main__"
):  # the docs' picture: python -m tests.playground.test_playground LOGDIR FILE, with a run of the deep config
    import sys

    from playwright.sync_api import sync_playwright

    from tests.conftest import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        spiral_screenshot(
            Path(sys.argv[1]), Path(sys.argv[2]), chromium.new_page(viewport={"width": 1400, "height": 1000})
        )
        chromium.close()
