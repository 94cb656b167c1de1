"""What the TensorFlow Playground shows, in TensorBoard's IMAGES tab: the network's output over the plane with the
training points on it, and the output of every hidden unit over the same plane, layer by layer."""

from typing import Any

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from lit_mnist.model import ACTIVATIONS
from lit_mnist.playground.spiral import PLANE, plane_grid
from lit_mnist.tensorboard.extras import summary_writer

# The Playground's colours: orange for -1 (class 0), a light grey for 0 and blue for +1 (class 1).
ORANGE, GREY, BLUE = torch.tensor([245, 147, 34]), torch.tensor([232, 234, 235]), torch.tensor([8, 119, 189])
WHITE = torch.tensor([255, 255, 255])
# The space between two units' pictures, in pixels, and how many units a row holds (the Playground's widest layer).
GAP, UNITS_PER_ROW = 4, 8


class PlaygroundPictures(Callback):
    """Draws the Playground's pictures into TensorBoard at the start of training, every few steps, and at its end.

    ``playground/output`` is the network's answer at each point of the plane, from orange (surely class 0) through grey
    (either) to blue (surely class 1), with the training points on it. ``playground/units_layerN`` has one picture
    per unit of hidden layer N: its output at each point of the plane, from grey (0) to blue for its largest positive
    value and orange for its most negative one. The first layer's units draw lines (a ReLU unit turns on across one);
    the deeper layers combine them into the spiral.

    Args:
        every_n_steps: Draw every n training steps.
        output_resolution: Width and height of the output's picture, in pixels.
        unit_resolution: Width and height of each unit's picture, in pixels.
    """

    def __init__(
        self, every_n_steps: PositiveInt = 250, output_resolution: PositiveInt = 240, unit_resolution: PositiveInt = 60
    ) -> None:
        self.every_n_steps = int(every_n_steps)
        self.output_resolution = int(output_resolution)
        self.unit_resolution = int(unit_resolution)
        self._drawn_at = -1

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._draw(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)

    def _draw(self, trainer: Trainer, pl_module: LightningModule) -> None:
        experiment = summary_writer(trainer)
        if experiment is None or trainer.global_step == self._drawn_at:
            return
        self._drawn_at = step = trainer.global_step
        data = trainer.datamodule
        picture = output_picture(pl_module, data, self.output_resolution)
        experiment.add_image("playground/output", picture, step, dataformats="HWC")
        _, hidden = network_outputs(pl_module, data, self.unit_resolution)
        for name, values in hidden.items():
            scale = values.abs().amax(dim=0).clamp(min=1e-12)  # each unit by its own largest value
            units = (values / scale).T.reshape(-1, self.unit_resolution, self.unit_resolution)
            experiment.add_image(f"playground/units_{name}", unit_row(units), step, dataformats="HWC")
        experiment.flush()


def network_outputs(pl_module: LightningModule, data: Any, resolution: int) -> tuple[Tensor, dict[str, Tensor]]:
    """The network at every pixel's point: its output in [-1, 1] (the probability of class 1, from -1 for
    surely class 0 to +1 for surely class 1), and each hidden layer's outputs (pixels, units) by layer name."""
    hidden: dict[str, Tensor] = {}
    activations = [module for module in pl_module.network if isinstance(module, tuple(ACTIVATIONS.values()))]
    hooks = [
        module.register_forward_hook(lambda m, i, out, index=index: hidden.__setitem__(f"layer{index}", out))
        for index, module in enumerate(activations, start=1)
    ]
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.no_grad():
            inputs = data.inputs(plane_grid(resolution)).to(pl_module.device)
            probabilities = pl_module(inputs).float().softmax(dim=1)
    finally:
        pl_module.train(was_training)
        for hook in hooks:
            hook.remove()
    return (probabilities[:, 1] * 2 - 1).cpu(), {name: values.float().cpu() for name, values in hidden.items()}


def output_picture(pl_module: LightningModule, data: Any, resolution: int) -> Tensor:
    """The network's output over the plane with the training points on it, as the Playground draws it: an RGB
    picture (resolution, resolution, 3) of bytes."""
    output, _ = network_outputs(pl_module, data, resolution)
    picture = colour(output.view(resolution, resolution))
    return with_points(picture, data.train_points, data.train_labels)


def colour(values: Tensor) -> Tensor:
    """Values in [-1, 1] (H, W) as the Playground colours them: an RGB picture (H, W, 3) of bytes."""
    values = values.clamp(-1, 1).unsqueeze(-1)
    towards = torch.where(values < 0, ORANGE, BLUE).float()
    return (GREY + (towards - GREY) * values.abs()).round().to(torch.uint8)


def with_points(picture: Tensor, points: Tensor, labels: Tensor) -> Tensor:
    """The picture of the plane with each point drawn on it as the Playground draws it: a disc of its class's colour
    with a white rim."""
    picture = picture.clone()
    size = picture.shape[0]
    low, high = PLANE
    columns = ((points[:, 0] - low) / (high - low) * size).long()
    rows = ((high - points[:, 1]) / (high - low) * size).long()
    offsets = torch.arange(-3, 4)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    distance = (dy**2 + dx**2).flatten()
    for radius, fill in ((3.5, None), (2.3, True)):
        inside = distance <= radius**2
        y = (rows[:, None] + dy.flatten()[inside]).clamp(0, size - 1)
        x = (columns[:, None] + dx.flatten()[inside]).clamp(0, size - 1)
        colours = torch.where(labels[:, None] == 1, BLUE, ORANGE).to(torch.uint8) if fill else WHITE.to(torch.uint8)
        picture[y, x] = colours[:, None, :].expand(-1, y.shape[1], -1) if fill else colours
    return picture


def unit_row(units: Tensor) -> Tensor:
    """Each unit's picture (units, H, W) in [-1, 1], coloured, side by side with a white gap, rows of at most eight."""
    count, height, width = units.shape
    columns = min(count, UNITS_PER_ROW)
    rows = -(-count // columns)
    sheet = torch.full((rows * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3), 255, dtype=torch.uint8)
    for index, unit in enumerate(units):
        row, column = divmod(index, columns)
        top, left = row * (height + GAP), column * (width + GAP)
        sheet[top : top + height, left : left + width] = colour(unit)
    return sheet
