"""What a real `tensorboard --logdir` server shows of two runs with different settings, also in a real browser."""

import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TINY_ARGS, get_json, launch_chromium, run_in_process, tensorboard, write_tiny_mnist

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data


# What TensorBoard's HPARAMS tab shows without a box ticked: its first five hyperparameters and first five metrics.
SHOWN_BY_DEFAULT = 5
RUNS = ["version_0", "version_1"]
SOME_HISTOGRAMS = ("weights/layer1", "biases/layer1", "gradients/layer1.weight", "activations/relu2")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two short runs, the post's and one with other settings, served by TensorBoard on a free loopback port."""
    work = tmp_path_factory.mktemp("runs")
    data = write_tiny_mnist(work / "data")
    for extra in ([], ["--model.init", "kaiming", "--model.learning_rate", "0.003", "--model.optimizer", "adamw"]):
        result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.enable_progress_bar",
                                "false", "--trainer.log_every_n_steps", "5", *extra, cwd=work)  # fmt: skip
        assert result.returncode == 0, result.stderr
    with tensorboard(work / "lightning_logs", RUNS) as url:
        yield url


def test_hparams_opens_on_the_networks_settings_and_the_test_results(server):
    """The same columns whatever differs between the runs in view (hidden_sizes does not here), so that one run shows
    them too."""
    experiment = get_json(f"{server}/data/plugin/hparams/experiment", {"experimentName": ""})
    shown = [info["name"] for info in experiment["hparamInfos"][:SHOWN_BY_DEFAULT]]
    assert shown == ["hidden_sizes", "init", "learning_rate", "optimizer"]
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"][:SHOWN_BY_DEFAULT]]
    assert metrics == ["acc/test", "loss/test", "acc/val", "loss/val", "acc/train"]
    names = {info["name"] for info in experiment["hparamInfos"]}
    assert not {"data_dir", "download"} & names


def test_time_series_start_with_the_accuracy_and_loss_curves(server):
    tags = get_json(f"{server}/data/plugin/scalars/tags")
    for run in ("version_0", "version_1"):
        # The accuracy and loss cards sort first; the learning rate, gradient norms and speed come after them.
        assert sorted(tags[run])[:6] == ["acc/test", "acc/train", "acc/val", "loss/test", "loss/train", "loss/val"]
    # TensorBoard groups cards by the part before "/", in alphabetical order: acc, loss, then test (the figures).
    images = get_json(f"{server}/data/plugin/images/tags")
    assert sorted(images["version_0"]) == [
        "network/layer1_units",
        "network/layer1_units_change",
        "test/confusion_matrix",
        "test/misclassified",
    ]


def test_every_tensorboard_plugin_has_the_runs_data(server):
    scalars = get_json(f"{server}/data/plugin/scalars/tags")
    assert "lr-SGD" in scalars["version_0"] and "lr-AdamW" in scalars["version_1"]
    assert "train/grad_norm/total" in scalars["version_0"] and "train/steps_per_second" in scalars["version_0"]
    for plugin in ("histograms", "distributions"):
        tags = get_json(f"{server}/data/plugin/{plugin}/tags")["version_0"]
        assert {f"network/{name}" for name in SOME_HISTOGRAMS} <= set(tags)
    assert "network/layer1_units" in get_json(f"{server}/data/plugin/images/tags")["version_0"]
    pr_curves = get_json(f"{server}/data/plugin/pr_curves/tags")["version_0"]
    assert {f"test/pr_curve/{digit}" for digit in range(10)} == set(pr_curves)
    assert get_json(f"{server}/data/plugin/text/tags") == {run: ["config/text_summary"] for run in RUNS}
    (embedding,) = get_json(f"{server}/data/plugin/projector/info?run=version_0")["embeddings"]
    assert embedding["tensorShape"] == [200, 500] and embedding["sprite"]["singleImageDim"] == [28, 28]
    assert sorted(get_json(f"{server}/data/plugin/projector/runs")) == RUNS
    graph = urllib.request.urlopen(f"{server}/data/plugin/graphs/graph?run=version_0&conceptual=false").read()
    names = re.findall(r'^\s*name: "([^"]+)"', graph.decode(), re.MULTILINE)
    assert {name.split("/")[0] for name in names} == {"input", "flatten", "layer1", "relu1", "layer2", "relu2",
                                                      "layer3", "output"}  # fmt: skip


# What each dashboard shows once it has rendered the runs' data, as a reader sees it in the browser. Cards further
# down a dashboard render only when scrolled to, so each text is one of the first.
DASHBOARDS = {
    "timeseries": "acc/train",
    "graphs": "layer1",  # a node of the graph, at the top level
    "histograms": "network/activations/relu1",
    "distributions": "network/activations/relu1",
    "images": "test/confusion_matrix",
    "pr_curves": "test/pr_curve/0",
    "text": re.compile(r"learning_rate: [0-9]"),
    "hparams": "learning_rate",
    "projector": re.compile(r"Points: [1-9]"),  # the embedding's points, loaded and drawn
}


def wait_until_shown(page, dashboard: str, timeout: float = 60) -> None:
    """Wait until the dashboard's text is visible in the page or in one of its frames (the projector has its own)."""
    text = DASHBOARDS[dashboard]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in page.frames:
            if dashboard == "graphs":
                found = frame.locator("text.nodelabel", has_text=re.compile(f"^{text}")).filter(visible=True)
            else:
                found = frame.get_by_text(text).filter(visible=True)
            if found.count():
                return
        page.wait_for_timeout(500)
    raise AssertionError(f"{dashboard}: {getattr(text, 'pattern', text)!r} not shown within {timeout} s")


@pytest.mark.parametrize("dashboard", DASHBOARDS)
def test_each_dashboard_renders_in_a_real_browser(server, browser, dashboard, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{server}/#{dashboard}")
        wait_until_shown(page, dashboard)
        page.screenshot(path=tmp_path / f"{dashboard}.png")
    finally:
        page.close()
    assert (tmp_path / f"{dashboard}.png").stat().st_size > 10_000


def test_time_series_opens_on_the_accuracy_and_loss_curves(server, browser):
    """TensorBoard opens its first two groups of cards: acc and loss, before the network's histograms."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{server}/#timeseries")
        wait_until_shown(page, "timeseries")
        groups = [title.split()[0] for title in page.locator(".group-title").all_inner_texts() if title != "Pinned"]
        # The cards of a closed group are not in the page; an open group's are, once scrolled to.
        page.locator(".group-title", has_text=re.compile(r"^loss")).first.scroll_into_view_if_needed()
        page.get_by_text("loss/val", exact=True).first.wait_for(state="attached", timeout=30_000)
    finally:
        page.close()
    assert groups[:2] == ["acc", "loss"], groups


def screenshots(logdir: Path, folder: Path) -> None:
    """Serve logdir with TensorBoard and save a screenshot of each dashboard into folder (the README's pictures)."""
    from playwright.sync_api import sync_playwright

    runs = sorted(path.name for path in logdir.iterdir() if path.is_dir())
    folder.mkdir(parents=True, exist_ok=True)
    with tensorboard(logdir, runs) as url, sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        for dashboard in DASHBOARDS:
            page = chromium.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/#{dashboard}")
            wait_until_shown(page, dashboard)
            page.wait_for_timeout(3000)  # let the charts finish drawing
            page.screenshot(path=folder / f"{dashboard}.png")
            page.close()
        chromium.close()


def parallel_coordinates(study: Path, file: Path) -> None:
    """Serve a sweep's folder with TensorBoard; save HPARAMS' parallel coordinates of its trials (README's picture)."""
    from playwright.sync_api import sync_playwright

    runs = sorted(path.name for path in study.iterdir() if path.is_dir())
    with tensorboard(study, runs) as url, sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        page = chromium.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/#hparams")
        wait_until_shown(page, "hparams")
        page.get_by_text("PARALLEL COORDINATES VIEW").click()
        scales = page.get_by_role("radio", name="Logarithmic")
        for axis in (1, 2):  # learning_rate and width, searched on a log scale (the axes sort by name after depth)
            scales.nth(axis).check()
        page.wait_for_timeout(5000)  # let the lines finish drawing
        page.screenshot(path=file)
        chromium.close()


if __name__ == "__main__":
    # python -m tests.tensorboard.test_tensorboard LOGDIR FOLDER, or --parallel-coordinates STUDY_FOLDER FILE
    import sys

    if sys.argv[1] == "--parallel-coordinates":
        parallel_coordinates(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        screenshots(Path(sys.argv[1]), Path(sys.argv[2]))
