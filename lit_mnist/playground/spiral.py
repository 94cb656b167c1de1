"""The TensorFlow Playground's spiral and its input features, as the Playground defines them (tensorflow/playground,
``classifySpiralData`` in src/dataset.ts and ``INPUTS`` in src/playground.ts), written for torch."""

import difflib
import math
from collections.abc import Callable

import torch
from torch import Tensor

from lit_mnist.run.errors import UserError

# The Playground's seven inputs, by the names the command line takes: each a function of a point's two coordinates.
FEATURES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1_squared": lambda x1, x2: x1 * x1,
    "x2_squared": lambda x1, x2: x2 * x2,
    "x1_times_x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: torch.sin(x1),
    "sin_x2": lambda x1, x2: torch.sin(x2),
}
# The Playground draws its plane, and so its spiral, over [-6, 6] on both axes; the spiral's radius reaches 5.
PLANE = (-6.0, 6.0)
# The most noise the Playground's slider gives (50, divided by 100 as the Playground does).
MAX_NOISE = 0.5


def spiral(num_samples: int, noise: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two interleaved spirals of ``num_samples // 2`` points each: points (N, 2) and their classes (N,).

    The Playground's ``classifySpiralData``: point i of n on a spiral has radius r = 5 i / n and angle
    t = 1.75 * 2 pi i / n, plus pi for the second spiral; it sits at (r sin t, r cos t), each coordinate moved by
    noise times a uniform draw from [-1, 1]. The Playground labels the first spiral +1 (class 1 here) and the second
    -1 (class 0).
    """
    n = num_samples // 2
    i = torch.arange(n, dtype=torch.float64)
    radius = i / n * 5
    points, labels = [], []
    for delta, label in ((0.0, 1), (math.pi, 0)):
        angle = 1.75 * i / n * 2 * math.pi + delta
        jitter = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * noise
        points.append(torch.stack((radius * torch.sin(angle), radius * torch.cos(angle)), dim=1) + jitter)
        labels.append(torch.full((n,), label))
    return torch.cat(points).float(), torch.cat(labels)


def check_features(names: list[str]) -> None:
    """One line for an empty list or an unknown name (with the nearest known one)."""
    if not names:
        raise UserError(f"--data.features is empty: give at least one of {', '.join(FEATURES)}, such as [x1, x2]")
    for name in names:
        if name not in FEATURES:
            nearest = difflib.get_close_matches(name, FEATURES, n=1)
            suggestion = f"; did you mean {nearest[0]}?" if nearest else ""
            raise UserError(f"--data.features: unknown feature {name}: use {', '.join(FEATURES)}{suggestion}")


def features(points: Tensor, names: list[str]) -> Tensor:
    """The network's inputs (N, len(names)) for points (N, 2): the named features of each, in the order given."""
    x1, x2 = points[:, 0], points[:, 1]
    return torch.stack([FEATURES[name](x1, x2) for name in names], dim=1)


def plane_grid(resolution: int) -> Tensor:
    """The centres of a resolution x resolution grid of pixels over the Playground's plane, row by row from the top
    left, as points (resolution², 2): x1 grows to the right and x2 upwards, as the Playground draws them."""
    low, high = PLANE
    step = (high - low) / resolution
    centres = torch.linspace(low + step / 2, high - step / 2, resolution)
    x2, x1 = torch.meshgrid(centres.flip(0), centres, indexing="ij")
    return torch.stack((x1.flatten(), x2.flatten()), dim=1)
