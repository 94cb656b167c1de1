"""Run folders: a new run claims its own version_N, even beside runs started at the same moment."""

import pytest

from lit_mnist.run import folders as runs_module
from lit_mnist.run.errors import UserError
from lit_mnist.run.folders import claim_run_folder


def test_runs_that_pick_a_version_at_the_same_moment_still_get_their_own_folders(tmp_path, monkeypatch):
    runs = tmp_path / "lightning_logs"
    assert [claim_run_folder(runs) for _ in range(3)] == [0, 1, 2]
    # Another run created version_3 between this one's listing of the folders and its own mkdir.
    listed = list(runs.glob("version_*"))
    (runs / "version_3").mkdir()
    monkeypatch.setattr(runs_module.Path, "glob", lambda self, pattern: iter(listed))
    assert claim_run_folder(runs) == 4


def test_a_runs_folder_that_cannot_be_created_gets_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(UserError, match="cannot create a run folder in .*taken/lightning_logs"):
        claim_run_folder(tmp_path / "taken" / "lightning_logs")
