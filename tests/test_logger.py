from lit_mnist.tensorboard.logger import TensorBoardLogger


def test_a_continued_run_does_not_draw_its_graph_again(tmp_path):
    first = TensorBoardLogger(str(tmp_path))
    first.experiment.add_scalar("x", 1.0)
    first.experiment.flush()
    assert first._graph_logged is False
    assert TensorBoardLogger(str(tmp_path), version=first.version)._graph_logged is True
