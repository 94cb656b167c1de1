"""Random distortions of a whole batch at once, a different one per image, resampled in a single grid_sample."""

import functools
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
        return torch.empty(*shape, device=device, dtype=dtype).uniform_(-bound, bound)

    angle = uniform(n, bound=math.radians(max_rotation))
    scale = 1 + uniform(n, bound=max_scale)
    shift_x, shift_y = uniform(n, bound=2 * max_shift), uniform(n, bound=2 * max_shift)  # normalised units: 2 wide
    # The grid maps output coordinates to input ones in [-1, 1], so it holds the inverse transform: rotating by
    # -angle, dividing by scale and moving by -shift.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, sin, -shift_x], 1), torch.stack([-sin, cos, -shift_y], 1)], 1)
    grid = _affine_grid(theta, height, width)
    if elastic_alpha > 0:
        grid += _elastic_field(n, height, width, elastic_alpha, elastic_sigma, device, dtype)
    return F.grid_sample(images, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=False)


def _affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """F.affine_grid(theta, (N, C, H, W), align_corners=False) as (N, 2, H, W): x and y planes.

    One matrix product with the pixel centres: on a CPU several times faster than affine_grid, which builds its
    base grid once per image, and augmentation runs on every training step.
    """
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1  # pixel centres
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    centres = torch.stack([xs.repeat(height), ys.repeat_interleave(width), torch.ones_like(xs).repeat(height)])
    return (theta @ centres).view(-1, 2, height, width)


def _elastic_field(
    n: int, height: int, width: int, alpha: float, sigma: float, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """(n, 2, H, W) displacements in normalised units: alpha pixels times uniform noise in [-1, 1] blurred by a
    Gaussian of sigma pixels (zero padding), as Simard et al. 2003 draw them.

    The blur is a matrix product on each side, blur(Z) = G Z G', and G = Q diag(s) Q' keeps few components: about 10
    of 28 at sigma 4. So G Z G' = (Q s) (Q' Z Q) (Q s)', where Q' Z Q is again noise of Z's variance, 1/3 (Gaussian,
    as sums of many uniforms are); drawing it only for the kept components makes the warp several times cheaper.
    """
    rows = _blur_factor(height, sigma).to(device=device, dtype=dtype)
    columns = _blur_factor(width, sigma).to(device=device, dtype=dtype)
    noise = torch.randn(n, 2, rows.shape[1], columns.shape[1], device=device, dtype=dtype)
    # Pixels to normalised units, and the standard deviation of uniform noise in [-1, 1].
    noise *= torch.tensor([2 / width, 2 / height], device=device, dtype=dtype).view(1, 2, 1, 1) * alpha / math.sqrt(3)
    return rows @ noise @ columns.T


@functools.cache
def _blur_factor(size: int, sigma: float, dropped: float = 1e-6) -> Tensor:
    """Q s for the fewest of the blur's components that hold all but `dropped` of its variance, as (size, k)."""
    positions = torch.arange(size, dtype=torch.float64)
    weights = torch.exp(-((positions[:, None] - positions[None, :]) ** 2) / (2 * sigma**2))
    blur = weights / weights.sum(dim=1, keepdim=True).max()  # zero padding: the kernel sums to 1 mid-image
    strengths, components = torch.linalg.eigh(blur)  # ascending
    variance = strengths.flip(0).square().cumsum(0)
    keep = int((variance < (1 - dropped) * variance[-1]).sum()) + 1
    return components[:, -keep:] * strengths[-keep:]
