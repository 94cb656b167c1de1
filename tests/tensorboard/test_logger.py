from lightning.pytorch import Trainer
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from lit_mnist.model import MNISTClassifier
from lit_mnist.tensorboard.logger import TensorBoardLogger


def graphs_in(folder) -> int:
    return sum(
        event.HasField("graph_def") for path in folder.glob("events.*") for event in EventFileLoader(str(path)).Load()
    )


def test_a_continued_run_does_not_draw_its_graph_again(tmp_path):
    model = MNISTClassifier()
    model.trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    first = TensorBoardLogger(str(tmp_path))
    first.log_graph(model)
    first.finalize("success")
    again = TensorBoardLogger(str(tmp_path), version=first.version)  # as a resumed run opens its folder
    again.log_graph(model)
    again.finalize("success")
    assert graphs_in(tmp_path / "lightning_logs" / "version_0") == 1
