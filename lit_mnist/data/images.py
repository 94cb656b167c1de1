"""The user's own digit images, prepared the way MNIST's digits were (LeCun et al.'s description of the dataset).

MNIST's digits are white on black, size-normalised to fit a 20x20 box with their aspect ratio kept (anti-aliasing
gives grey edges), then placed in a 28x28 field so that their centre of mass sits at its centre.
"""

import warnings
from pathlib import Path
from typing import BinaryIO, Optional, Union

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.v2.functional import pil_to_tensor, resize

from lit_mnist.data.mnist_files import IMAGE_SIZE

DIGIT_BOX = 20  # the longer side of a digit, in pixels
# Where MNIST's digits have their centre of mass, in pixel coordinates (measured: 13.99 and 14.01 on the test set).
CENTRE = IMAGE_SIZE / 2
# Ink is what stands out from the background by more than this share of the darkest-to-brightest range; fainter
# pixels (paper texture, JPEG noise) do not count when the digit's box is found.
INK_THRESHOLD = 0.25


class UnreadableImage(Exception):
    """A file that is not an image, or an image with no digit in it."""


def read_digit(source: Union[Path, BinaryIO], max_pixels: Optional[int] = None) -> Tensor:
    """Read an image (a file, or its bytes: any size, RGB or grey, either polarity) as an MNIST digit: uint8 (28, 28).

    Images of more than ``max_pixels`` pixels are refused before they are decoded (by default, Pillow's limit).
    """
    if isinstance(source, Path) and not source.is_file():
        # A broken or looping link, a pipe or a device: nothing to open, or nothing to wait for.
        raise UnreadableImage("not a regular file (a broken or looping link?)")
    try:
        # Pillow only warns about images between MAX_IMAGE_PIXELS and twice that, and decodes them (hundreds of MB).
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(source)
        with opened:
            width, height = opened.size
            if max_pixels is not None and width * height > max_pixels:
                raise UnreadableImage(f"too large to read safely ({width} x {height} pixels, more than {max_pixels})")
            image = ImageOps.exif_transpose(opened)  # photos from phones are often stored sideways
            # A digit drawn on a transparent background: the opaque pixels are the ink, whatever their colour.
            alpha = _transparency(image)
            grey = image.convert("L") if alpha is None else alpha
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(f"too large to read safely ({_reason(error)})") from None
    except UnidentifiedImageError:  # Pillow's message only repeats the file's name, or an object's
        raise UnreadableImage("not an image (in no format Pillow reads)") from None
    except (OSError, ValueError) as error:  # truncated or damaged files, unsupported modes
        raise UnreadableImage(f"not a readable image ({_reason(error)})") from None
    return to_mnist_digit(pil_to_tensor(grey)[0])


def to_model_input(digits: Tensor) -> Tensor:
    """uint8 digits (N, 28, 28) as the network takes them: float (N, 1, 28, 28) with pixels in [0, 1]."""
    return digits.unsqueeze(1).float().div_(255)


def to_mnist_digit(grey: Tensor) -> Tensor:
    """Turn a greyscale uint8 image (H, W) into a white-on-black 28x28 digit, as MNIST's were made.

    The background's brightness is the median of the border pixels: on a light background the image is inverted.
    """
    pixels = grey.float()
    border = torch.cat([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = border.median()
    if background > 127.5:
        pixels, background = 255 - pixels, 255 - background
    ink = (pixels - background).clamp(min=0)
    if ink.max() < 16:  # within JPEG noise of the background everywhere
        raise UnreadableImage("no digit found: the image is one flat shade")
    ink = ink * (255 / ink.max())  # full contrast, as MNIST's strokes are

    strokes = ink > INK_THRESHOLD * 255
    rows, cols = strokes.any(dim=1).nonzero(), strokes.any(dim=0).nonzero()
    digit = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]

    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    digit = resize(digit[None], size, antialias=True)[0].clamp(0, 255)

    # Place the digit so that its centre of mass falls on MNIST's, keeping all of it inside the field.
    total = digit.sum()
    centre_y = (digit.sum(dim=1) * torch.arange(size[0])).sum() / total
    centre_x = (digit.sum(dim=0) * torch.arange(size[1])).sum() / total
    top = min(max(round(float(CENTRE - centre_y)), 0), IMAGE_SIZE - size[0])
    left = min(max(round(float(CENTRE - centre_x)), 0), IMAGE_SIZE - size[1])
    field = torch.zeros(IMAGE_SIZE, IMAGE_SIZE)
    field[top : top + size[0], left : left + size[1]] = digit
    return field.round().to(torch.uint8)


def _transparency(image: Image.Image) -> Optional[Image.Image]:
    """The image's alpha channel if some of its pixels are transparent, else None."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return None
    alpha = image.convert("RGBA").getchannel("A")
    low, _ = alpha.getextrema()
    return alpha if low < 255 else None


def _reason(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
