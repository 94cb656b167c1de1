"""Preparing the user's own images the way MNIST's digits were prepared."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from lit_mnist.data.images import UnreadableImage, read_digit, to_mnist_digit


def stroke_image(height: int = 300, width: int = 200) -> torch.Tensor:
    """A light-on-dark 'digit': a thick bar off the centre of a larger, non-square canvas."""
    image = torch.zeros(height, width, dtype=torch.uint8)
    image[40:220, 20:60] = 255
    return image


def centre_of_mass(digit: torch.Tensor) -> tuple[float, float]:
    weights = digit.float()
    positions = torch.arange(28.0)
    return float((weights.sum(1) * positions).sum() / weights.sum()), float(
        (weights.sum(0) * positions).sum() / weights.sum()
    )


def test_digit_fits_a_20_pixel_box_centred_by_mass_in_28x28():
    digit = to_mnist_digit(stroke_image())
    assert digit.shape == (28, 28) and digit.dtype == torch.uint8
    rows, cols = (digit > 0).any(1).nonzero(), (digit > 0).any(0).nonzero()
    assert rows.max() - rows.min() + 1 == 20  # the longer side, scaled to 20
    assert cols.max() - cols.min() + 1 < 20  # the aspect ratio is kept
    centre_y, centre_x = centre_of_mass(digit)
    assert abs(centre_y - 14) <= 0.5 and abs(centre_x - 14) <= 0.5
    assert digit.max() == 255


def test_dark_on_light_is_inverted_to_mnists_light_on_dark():
    light_on_dark = stroke_image()
    assert torch.equal(to_mnist_digit(255 - light_on_dark), to_mnist_digit(light_on_dark))
    assert to_mnist_digit(255 - light_on_dark)[0, 0] == 0


def test_a_flat_image_has_no_digit():
    with pytest.raises(UnreadableImage, match="no digit"):
        to_mnist_digit(torch.full((50, 50), 200, dtype=torch.uint8))


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_rgb_and_grey_files_give_the_same_digit(tmp_path: Path, suffix: str):
    grey = 255 - stroke_image()
    Image.fromarray(grey.numpy()).save(tmp_path / f"grey{suffix}")
    Image.fromarray(grey.numpy()).convert("RGB").save(tmp_path / f"rgb{suffix}")
    from_grey, from_rgb = read_digit(tmp_path / f"grey{suffix}"), read_digit(tmp_path / f"rgb{suffix}")
    assert (from_grey.float() - from_rgb.float()).abs().max() <= 2  # JPEG's colour rounding
    assert (from_grey.float() - to_mnist_digit(stroke_image()).float()).abs().mean() < 3


def test_on_a_transparent_background_the_opaque_pixels_are_the_digit(tmp_path: Path):
    rgba = torch.zeros(300, 200, 4, dtype=torch.uint8)  # transparent black...
    rgba[..., 3] = stroke_image()  # ...with a black, opaque stroke
    Image.fromarray(rgba.numpy(), mode="RGBA").save(tmp_path / "drawing.png")
    assert torch.equal(read_digit(tmp_path / "drawing.png"), to_mnist_digit(stroke_image()))


def test_files_that_are_not_images_say_so(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("not a picture")
    with pytest.raises(UnreadableImage, match="not an image"):
        read_digit(tmp_path / "notes.txt")
    Image.fromarray(stroke_image().numpy()).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    with pytest.raises(UnreadableImage):
        read_digit(tmp_path / "cut.png")
