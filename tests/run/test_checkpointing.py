import pytest
import torch

from lit_mnist.run import checkpoints as checkpointing
from lit_mnist.run.checkpoints import AtomicCheckpointIO


def test_a_crash_mid_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def dies_halfway(obj, file):
        file.write(b"PK\x03\x04 half of a checkpoint")
        raise KeyboardInterrupt  # the process is stopped in the middle of writing

    monkeypatch.setattr(checkpointing.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_a_finished_write_replaces_the_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert torch.load(path, weights_only=True)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
