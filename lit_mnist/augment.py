"""Random distortions of a whole batch at once, a different one per image, resampled in a single grid_sample."""

import math

import torch
from torch import Tensor
from torch.nn import functional as F


def random_distortion(
    images: Tensor,
    max_rotation: float,
    max_shift: float,
    max_scale: float,
    elastic_alpha: float = 0.0,
    elastic_sigma: float = 4.0,
) -> Tensor:
    """Rotate, scale, shift and elastically warp each image of (N, C, H, W) by its own random amounts.

    Empty borders stay 0. Random numbers come from the global RNG, so runs are seeded and resumable.

    Args:
        images: A batch of images with a black (0) background.
        max_rotation: Largest rotation in degrees, either way.
        max_shift: Largest shift, as a fraction of the image's size, along each axis.
        max_scale: Largest relative change of size: 0.1 draws a zoom factor in [0.9, 1.1].
        elastic_alpha: Strength of the elastic warp in pixels (0 turns it off): a field of random displacements in
            [-1, 1], smoothed by a Gaussian of elastic_sigma pixels and multiplied by alpha (Simard et al. 2003).
        elastic_sigma: Smoothness of the elastic warp in pixels.
    """
    n, _, height, width = images.shape
    device, dtype = images.device, images.dtype

    def uniform(*shape: int, bound: float) -> Tensor:  # in [-bound, bound]
        return (torch.rand(*shape, device=device, dtype=dtype) * 2 - 1) * bound

    angle = uniform(n, bound=math.radians(max_rotation))
    scale = 1 + uniform(n, bound=max_scale)
    # affine_grid maps output coordinates to input ones in [-1, 1], so the matrix is the inverse transform:
    # rotating by -angle, dividing by scale and moving by -shift (2 * shift in normalised units).
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift_x, shift_y = uniform(n, bound=2 * max_shift), uniform(n, bound=2 * max_shift)
    theta = torch.stack([torch.stack([cos, sin, -shift_x], 1), torch.stack([-sin, cos, -shift_y], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
    if elastic_alpha > 0:
        field = _smooth(uniform(n, 2, height, width, bound=1.0), elastic_sigma)
        # Pixels to normalised units, (N, 2, H, W) to the grid's (N, H, W, 2) with x first.
        field = field * elastic_alpha * field.new_tensor([2 / width, 2 / height]).view(1, 2, 1, 1)
        grid = grid + field.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _smooth(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (..., H, W) with zero padding, as two matrix products with banded Gaussian matrices.

    On a CPU this is several times faster than convolving (torchvision's gaussian_blur, or conv2d) at these sizes.
    """
    height, width = images.shape[-2:]

    def gaussian_matrix(size: int) -> Tensor:
        positions = torch.arange(size, device=images.device, dtype=images.dtype)
        weights = torch.exp(-((positions[:, None] - positions[None, :]) ** 2) / (2 * sigma**2))
        return weights / weights.sum(dim=1, keepdim=True).max()  # the kernel's sum: 1 in the middle of the image

    return gaussian_matrix(height) @ images @ gaussian_matrix(width).T
