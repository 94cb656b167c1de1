"""Random affine augmentation of a whole batch at once, a different transform per image."""

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def random_affine(images: Tensor, max_rotation: float, max_shift: float, max_scale: float) -> Tensor:
    """Rotate, scale and shift each image of (N, C, H, W) by its own random amounts; empty borders stay 0.

    Args:
        images: A batch of images with a black (0) background.
        max_rotation: Largest rotation in degrees, either way.
        max_shift: Largest shift, as a fraction of the image's size, along each axis.
        max_scale: Largest relative change of size: 0.1 draws a zoom factor in [0.9, 1.1].
    """
    n = images.shape[0]
    device, dtype = images.device, images.dtype

    def uniform(bound: float) -> Tensor:  # in [-bound, bound], from the global RNG so runs are seeded and resumable
        return (torch.rand(n, device=device, dtype=dtype) * 2 - 1) * bound

    angle = uniform(math.radians(max_rotation))
    scale = 1 + uniform(max_scale)
    # affine_grid maps output coordinates to input ones in [-1, 1], so the matrix is the inverse transform:
    # rotating by -angle, dividing by scale and moving by -shift (2 * shift in normalised units).
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift_x, shift_y = uniform(2 * max_shift), uniform(2 * max_shift)
    theta = torch.stack([torch.stack([cos, sin, -shift_x], 1), torch.stack([-sin, cos, -shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
