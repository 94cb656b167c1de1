"""``python -m lit_mnist fit --config configs/spiral_deep.yaml``: the MNIST run's command line, with the spiral as its
data and the Playground's pictures in TensorBoard.

A config (or ``--data``) that names the spiral's data module, as LightningCLI names any class, selects this command
line; everything else about the run is the MNIST run's.
"""

from pathlib import Path
from typing import Any, Optional

import yaml
from lightning.pytorch import Callback
from lightning.pytorch.cli import LightningArgumentParser

from lit_mnist import cli
from lit_mnist.playground.datamodule import SpiralDataModule
from lit_mnist.playground.pictures import PlaygroundPictures
from lit_mnist.run.errors import UserError
from lit_mnist.tensorboard.figures import TestFigures

NAMES = {SpiralDataModule.__name__, f"{SpiralDataModule.__module__}.{SpiralDataModule.__name__}",
         f"lit_mnist.playground.{SpiralDataModule.__name__}"}  # fmt: skip


class PlaygroundCLI(cli.LitMNISTCLI):
    """The MNIST run's command line with the spiral's data module, chosen as LightningCLI chooses a class:
    ``data: {class_path: lit_mnist.playground.SpiralDataModule, init_args: {...}}`` in a config, or ``--data
    SpiralDataModule``."""

    def __init__(self, args: Optional[list[str]] = None, **kwargs: Any) -> None:
        super().__init__(args, datamodule_class=SpiralDataModule, subclass_mode_data=True, **kwargs)

    def persistent_callbacks(self) -> list[Callback]:
        # The confusion matrix and misclassified digits are the digits' pictures; the Playground's replace them.
        return [callback for callback in super().persistent_callbacks() if not isinstance(callback, TestFigures)]

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.add_lightning_class_args(PlaygroundPictures, "playground")

    def validates(self, config: Any) -> bool:
        return False  # the Playground holds no points back for validation

    def check_checkpoint(self, checkpoint: dict[str, Any], subcommand: str) -> None:
        if subcommand in ("predict", "serve", "export"):
            raise UserError(
                f"{subcommand} takes MNIST digits; the spiral's network is drawn in TensorBoard's IMAGES tab"
            )
        features = self.config[subcommand].data.init_args.features
        shape = (checkpoint.get("hyper_parameters") or {}).get("input_shape")
        if shape != [len(features)]:
            raise UserError(
                f"--ckpt_path: this checkpoint's network takes inputs of shape {shape}, and --data.features gives "
                f"{len(features)}; give the --config of the run that made it"
            )

    def data_options(self, command_line: list[str], subcommand: str, checkpoint: dict[str, Any]) -> list[str]:
        return command_line  # a spiral run's data settings come with its --config


def names_the_spiral(command_line: list[str]) -> bool:
    """Whether the command line selects the spiral: ``--data SpiralDataModule`` (or ``--data.help`` of it), or a
    --config whose data's class_path is the spiral's (at the top of the file, or under the subcommand's name)."""
    for option, value in zip(command_line, command_line[1:]):
        if option in ("--data", "--data.help") and value in NAMES:
            return True
        if option in ("-c", "--config") and Path(value).is_file():
            try:
                config = yaml.safe_load(Path(value).read_text())
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue  # the CLI reads it again, and says what is wrong with it in one line
            sections = [config, *config.values()] if isinstance(config, dict) else []
            for section in sections:
                data = section.get("data") if isinstance(section, dict) else None
                if isinstance(data, dict) and data.get("class_path") in NAMES:
                    return True
    return any(argument.startswith("--data=") and argument.split("=", 1)[1] in NAMES for argument in command_line)


def main(args: Optional[list[str]] = None) -> None:
    cli.main(args, cli_class=PlaygroundCLI)
