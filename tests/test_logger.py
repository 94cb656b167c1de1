from lit_mnist.logger import TensorBoardLogger


def test_runs_that_pick_a_version_at_the_same_moment_still_get_their_own_folders(tmp_path):
    first, second = TensorBoardLogger(str(tmp_path)), TensorBoardLogger(str(tmp_path))
    # Both look at the empty runs folder before either has written anything, as two runs started together do.
    assert first.version == second.version == 0
    first.experiment.add_scalar("x", 1.0)
    second.experiment.add_scalar("x", 2.0)
    first.experiment.flush()
    second.experiment.flush()
    assert {first.version, second.version} == {0, 1}
    assert first.log_dir != second.log_dir
    for logger in (first, second):
        assert len(list((tmp_path / "lightning_logs" / f"version_{logger.version}").glob("events.*"))) == 1


def test_a_continued_run_does_not_draw_its_graph_again(tmp_path):
    first = TensorBoardLogger(str(tmp_path))
    first.experiment.add_scalar("x", 1.0)
    first.experiment.flush()
    assert first._graph_logged is False
    assert TensorBoardLogger(str(tmp_path), version=first.version)._graph_logged is True
