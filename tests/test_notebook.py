"""The post's readers' notebook, run top to bottom on the real digits with small settings, as papermill runs it."""

import json
import re

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a Jupyter kernel and the real data

NOTEBOOK = REPO / "notebooks" / "the_post_step_by_step.ipynb"


def test_the_notebook_is_stored_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


@pytest.mark.parametrize("opened_in", [".", "notebooks"], ids=["root", "notebooks folder"])
def test_the_notebook_runs_the_posts_experiment_the_alchemy_and_the_spiral(real_data, tmp_path, opened_in):
    """From the clone's root, and from notebooks/, where JupyterLab and VS Code start its kernel."""
    import papermill

    tmp_path = tmp_path / opened_in
    tmp_path.mkdir(exist_ok=True)
    parameters = dict(DATA_DIR=str(real_data), MAX_STEPS=60, ALCHEMY_STEPS=30, SPIRAL_STEPS=100, SHOW_TENSORBOARD=False)
    ran = papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "ran.ipynb"), parameters=parameters, cwd=tmp_path,
                                     kernel_name="python3", progress_bar=False)  # fmt: skip
    printed = "".join(
        output.get("text", "") for cell in ran["cells"] if cell["cell_type"] == "code" for output in cell["outputs"]
    )
    assert "test accuracy" in printed and "(the post: 85.75%)" in printed
    # What a reader wants to see: no tips for Lightning's other products, no device lines, no deprecation from inside
    # Lightning, no warning of any kind, and a bar that moves every 100 steps rather than at every one.
    noise = [line for line in printed.splitlines()
             if re.search(r"Tip:|available:|Seed set|Warning|deprecated|\.py:\d+: ", line)]  # fmt: skip
    assert noise == [], noise
    bars = sum(output.get("text", "").count("\r") for cell in ran["cells"] if cell["cell_type"] == "code"
               for output in cell["outputs"])  # fmt: skip
    assert bars < 50, bars
    assert printed.count(": acc/val 0.") == 3  # one line per setting of the alchemy
    for network in ("shallow, X1 and X2", "shallow, the 7 features", "deeper, X1 and X2"):  # the spiral's three
        assert f"{network}: acc/test " in printed
    pictures = [output for output in ran["cells"][-1]["outputs"] if "image/png" in output.get("data", {})]
    assert len(pictures) == 1  # the three networks' answers over the plane, side by side
    assert (tmp_path / "lightning_logs" / "notebook" / "version_0").is_dir()
    # The alchemy's runs in a folder of their own, not the one `sweep --study_name alchemy` uses.
    assert sorted(path.name for path in (tmp_path / "lightning_logs").iterdir()) == ["notebook", "notebook_alchemy"]
    assert len(list((tmp_path / "lightning_logs" / "notebook_alchemy").iterdir())) == 3


def test_the_notebook_finds_the_clones_data_folder_wherever_it_is_opened():
    """JupyterLab and VS Code start the kernel in notebooks/: the data folder is the clone's data/, not
    notebooks/data."""
    cell = "".join(json.loads(NOTEBOOK.read_text())["cells"][1]["source"])
    settings: dict = {}
    exec(cell, settings)  # the settings cell alone, run where the tests run
    assert settings["DATA_DIR"] == str(REPO / "data")
