"""`export`: the checkpoint's network as an ONNX file that ONNX Runtime runs as the checkpoint does."""

import onnxruntime
import pytest
import torch

from lit_mnist.model import MNISTClassifier
from tests.conftest import run_in_process

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data


def test_the_exported_file_takes_any_number_of_images_and_gives_the_checkpoints_logits(checkpoint, tmp_path):
    result = run_in_process("export", "--ckpt_path", str(checkpoint), "--output", "digits.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["digits.onnx"]  # no run folder, no leftovers
    session = onnxruntime.InferenceSession(str(tmp_path / "digits.onnx"))
    (images,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (images.name, images.type, images.shape[1:]) == ("images", "tensor(float)", [1, 28, 28])
    assert (logits.name, logits.shape[1:]) == ("logits", [10])
    model = MNISTClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    for count in (1, 37):
        pixels = torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(count))
        (exported,) = session.run(["logits"], {"images": pixels.numpy()})
        with torch.no_grad():
            assert (torch.from_numpy(exported) - model(pixels)).abs().max() <= 1e-4


def test_export_never_overwrites_and_needs_a_checkpoint(checkpoint, tmp_path):
    (tmp_path / "mine.onnx").write_text("the user's own file")
    result = run_in_process("export", "--ckpt_path", str(checkpoint), "--output", "mine.onnx", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: --output mine.onnx exists already: give a new file name, or remove it first"
    assert (tmp_path / "mine.onnx").read_text() == "the user's own file"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mine.onnx"]
    missing = run_in_process("export", "--output", "new.onnx", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: export needs a checkpoint")


def test_the_readmes_onnxruntime_example_reads_a_digit(checkpoint, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from tests.conftest import REPO, make_digits

    readme = (REPO / "docs" / "command-line.md").read_text()
    example = next(block for block in readme.split("```python\n")[1:] if "onnxruntime" in block).split("```")[0]
    assert run_in_process("export", "--ckpt_path", str(checkpoint), cwd=tmp_path).returncode == 0  # model.onnx
    images, _ = make_digits(1, seed=3)
    Image.fromarray(images[0].to(torch.uint8).numpy()).save(tmp_path / "my_digit.png")
    monkeypatch.chdir(tmp_path)
    exec(example, {})
    model = MNISTClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    with torch.no_grad():
        expected = int(model(images[None].float() / 255).argmax())
    assert capsys.readouterr().out == f"digit: {expected}\n"


def test_a_batch_norm_network_exports_as_the_posts_three_layers(tmp_path):
    import onnx

    from lit_mnist.serving.onnx_export import export_onnx

    def exported_graph(model: MNISTClassifier, name: str) -> tuple[list[str], list[tuple[int, ...]]]:
        export_onnx(model, tmp_path / name)
        graph = onnx.load(str(tmp_path / name)).graph
        return [node.op_type for node in graph.node], [tuple(weights.dims) for weights in graph.initializer]

    torch.manual_seed(0)
    model = MNISTClassifier(init="kaiming", batch_norm=True)
    model(torch.rand(64, 1, 28, 28))  # running statistics away from their start
    operations, shapes = exported_graph(model, "digits.onnx")
    plain_operations, _ = exported_graph(MNISTClassifier(init="kaiming"), "plain.onnx")
    assert operations == plain_operations and "Gemm" in operations
    assert [shape for shape in shapes if len(shape) == 2] == [(500, 784), (500, 500), (10, 500)]
    session = onnxruntime.InferenceSession(str(tmp_path / "digits.onnx"))
    pixels = torch.rand(5, 1, 28, 28)
    (exported,) = session.run(["logits"], {"images": pixels.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(exported) - model.eval()(pixels)).abs().max() <= 1e-4
    assert len(model.network) == 7  # the exported copy was folded, not the model
