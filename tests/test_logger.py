import pytest

from lit_mnist.errors import UserError
from lit_mnist.tensorboard import logger as logger_module
from lit_mnist.tensorboard.logger import TensorBoardLogger, claim_run_folder


def test_runs_that_pick_a_version_at_the_same_moment_still_get_their_own_folders(tmp_path, monkeypatch):
    runs = tmp_path / "lightning_logs"
    assert [claim_run_folder(runs) for _ in range(3)] == [0, 1, 2]
    # Another run created version_3 between this one's listing of the folders and its own mkdir.
    listed = list(runs.glob("version_*"))
    (runs / "version_3").mkdir()
    monkeypatch.setattr(logger_module.Path, "glob", lambda self, pattern: iter(listed))
    assert claim_run_folder(runs) == 4


def test_a_runs_folder_that_cannot_be_created_gets_one_line(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(UserError, match="cannot create a run folder in .*taken/lightning_logs"):
        claim_run_folder(tmp_path / "taken" / "lightning_logs")


def test_a_continued_run_does_not_draw_its_graph_again(tmp_path):
    first = TensorBoardLogger(str(tmp_path))
    first.experiment.add_scalar("x", 1.0)
    first.experiment.flush()
    assert first._graph_logged is False
    assert TensorBoardLogger(str(tmp_path), version=first.version)._graph_logged is True
