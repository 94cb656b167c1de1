"""The network as an ONNX file, for ONNX Runtime and any other ONNX consumer."""

import copy
import os
import uuid
from pathlib import Path

import onnx  # noqa: F401  torch's exporter imports both when it runs: here they fail early, as a missing extra
import onnxscript  # noqa: F401
import torch

from lit_mnist.data.mnist_files import IMAGE_SIZE
from lit_mnist.model import MNISTClassifier, fold_batch_norm
from lit_mnist.run.errors import UserError

INPUT_NAME, OUTPUT_NAME = "images", "logits"


def export_onnx(model: MNISTClassifier, output: Path) -> None:
    """Writes ``model``'s forward to ``output`` as ONNX: input ``images``, float32 (N, 1, 28, 28) with pixels in
    [0, 1] and any N; output ``logits`` (N, 10). An existing file is never replaced.
    """
    if output.exists():
        raise UserError(f"--output {output} exists already: give a new file name, or remove it first")
    if not output.parent.is_dir():
        raise UserError(f"--output {output}: no folder {output.parent}")
    model = copy.deepcopy(model).cpu().eval()
    model.network = fold_batch_norm(model.network)  # the Linear layers and ReLUs alone, however they were trained
    example = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        verbose=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
    )
    # Written beside the target, then linked to its name, which fails if a file of that name appeared meanwhile.
    # Created with the mode every other file of the run gets (0666 less the umask): mkstemp's 0600 would keep a
    # server running as another user from reading it.
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        program.save(str(partial))
        os.link(partial, output)
    except FileExistsError:
        raise UserError(f"--output {output} exists already: give a new file name, or remove it first") from None
    finally:
        os.unlink(partial)
