"""The TensorBoard extras' own writers, against the SummaryWriter methods they stand in for."""

import numpy
import torch
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig
from torch.utils.tensorboard import SummaryWriter

from lit_mnist.tensorboard.extras import _add_embedding


def test_the_embedding_is_written_as_add_embedding_writes_it(tmp_path):
    generator = torch.Generator().manual_seed(0)
    mat = torch.randn(60, 7, generator=generator).relu() * 100
    images = torch.rand(60, 1, 28, 28, generator=generator)
    metadata = [[str(index % 10), str(index % 7), "right"] for index in range(60)]
    header = ["true", "predicted", "result"]
    theirs, ours = tmp_path / "torch", tmp_path / "ours"
    for folder in (theirs, ours):
        folder.mkdir()
    with SummaryWriter(theirs) as writer:
        for step in (3, 5):  # two test passes of one run: the projector lists both
            writer.add_embedding(mat, metadata, images, step, "hidden", header)
    with SummaryWriter(ours) as writer:
        projector = ProjectorConfig()
        for step in (3, 5):
            _add_embedding(writer, projector, mat, metadata, header, images, step, "hidden")

    written = sorted(path.relative_to(theirs) for path in theirs.rglob("*") if "tfevents" not in path.name)
    assert written == sorted(path.relative_to(ours) for path in ours.rglob("*") if "tfevents" not in path.name)
    assert "00005/hidden/tensors.tsv" in {str(path) for path in written}
    for path in written:
        if path.name == "tensors.tsv":  # the same numbers to six significant digits
            expected, actual = (numpy.loadtxt(folder / path, delimiter="\t") for folder in (theirs, ours))
            numpy.testing.assert_allclose(actual, expected, rtol=1e-5)
        elif (theirs / path).is_file():
            assert (ours / path).read_bytes() == (theirs / path).read_bytes(), path
