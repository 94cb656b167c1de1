"""The HTTP API's model side: a LitServe LitAPI that reads a picture the way ``predict`` does and guesses its digit.

``POST /predict`` takes ``{"image": "<base64 of a PNG or JPEG file>"}`` and answers ``{"digit": 7, "probabilities":
[10 numbers], "preview": "<base64 PNG of the 28x28 digit the network saw>"}``.
"""

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any, Union

import litserve as ls
import torch
from fastapi.responses import JSONResponse
from lightning.pytorch import LightningModule
from PIL import Image
from pydantic import BaseModel, StrictStr
from torch import Tensor

from lit_mnist.data.images import UnreadableImage, read_digit, to_model_input

# A drawing or a photo of a digit needs far fewer; a larger image costs the worker seconds and hundreds of MB.
MAX_IMAGE_PIXELS = 25_000_000


class DigitRequest(BaseModel):
    """The request body; FastAPI checks its shape (a JSON object with a string ``image``) before it is queued."""

    image: StrictStr


@dataclass
class BadImage:
    """A request whose image could not be read: it is answered with ``status`` and ``detail`` on its own, so that it
    does not fail the other requests of its batch (LitServe fails a whole batch on an exception)."""

    status: int
    detail: str


class DigitAPI(ls.LitAPI):
    """Guesses the digit in each picture with ``model``, one batch of concurrent requests at a time.

    Args:
        model: The trained network, weights loaded; each inference worker gets a copy.
        max_batch_size: Most requests answered together; 1 answers each on its own.
        batch_timeout: Seconds a batch waits for more requests before it runs.
    """

    def __init__(self, model: LightningModule, max_batch_size: int = 1, batch_timeout: float = 0.0) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model = model

    def setup(self, device: str) -> None:
        # This network's batches are too small to gain from more threads, which would take cores from the web server.
        torch.set_num_threads(1)
        self.device = torch.device(device)
        self.model = self.model.to(self.device).eval()

    def decode_request(self, request: DigitRequest) -> Union[Tensor, BadImage]:
        try:
            data = base64.b64decode(request.image, validate=True)
        except binascii.Error as error:
            return BadImage(400, f"image is not base64 ({error}): send the file's bytes base64-encoded")
        if not data:
            return BadImage(400, "image is empty: send the base64 of a PNG or JPEG file")
        try:
            return read_digit(io.BytesIO(data), max_pixels=MAX_IMAGE_PIXELS)
        except UnreadableImage as error:
            return BadImage(422, f"image: {error}")

    def batch(self, inputs: list[Union[Tensor, BadImage]]) -> list[Union[Tensor, BadImage]]:
        return inputs  # stacked in predict, without the bad ones (LitServe's own batch would stack them all)

    def predict(self, inputs: Any) -> Any:
        if self.max_batch_size > 1:
            return self._predict_many(inputs)
        return self._predict_many([inputs])[0]

    @torch.inference_mode()
    def _predict_many(self, inputs: list[Union[Tensor, BadImage]]) -> list[Union[tuple[Tensor, Tensor], BadImage]]:
        """(digit, probabilities) for each readable picture, the BadImage itself for the others."""
        readable = [index for index, item in enumerate(inputs) if isinstance(item, Tensor)]
        results: list[Any] = list(inputs)
        if readable:
            digits = torch.stack([inputs[index] for index in readable])
            images = to_model_input(digits.to(self.device))  # uint8 to the device, as predict moves its batches
            # predict_step is what `python -m lit_mnist predict` runs on each batch: the same answer for the same file.
            _, probabilities = self.model.predict_step((images, torch.arange(len(readable))), 0)
            for index, digit, row in zip(readable, digits, probabilities.float().cpu()):
                results[index] = (digit, row)
        return results

    def encode_response(self, output: Union[tuple[Tensor, Tensor], BadImage]) -> JSONResponse:
        if isinstance(output, BadImage):
            return JSONResponse({"detail": output.detail}, status_code=output.status)
        digit, probabilities = output
        return JSONResponse(
            {
                "digit": int(probabilities.argmax()),
                "probabilities": probabilities.tolist(),
                "preview": _png_base64(digit),
            }
        )


def _png_base64(digit: Tensor) -> str:
    """The 28x28 digit (white on black, as the network sees it) as a base64 PNG."""
    buffer = io.BytesIO()
    Image.fromarray(digit.numpy()).save(buffer, format="PNG")  # uint8 (28, 28): greyscale
    return base64.b64encode(buffer.getvalue()).decode("ascii")
