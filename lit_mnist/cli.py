"""Train, evaluate and use the post's deeper MNIST network: LightningCLI with the post's experiment as defaults."""

import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn, Optional

import torch
import yaml
from jsonargparse import lazy_instance
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lit_mnist.callbacks import PeriodicLastCheckpoint, RNGStateCheckpoint, TestFigures
from lit_mnist.checkpointing import AtomicCheckpointIO
from lit_mnist.data import MNISTDataModule
from lit_mnist.errors import UserError
from lit_mnist.logger import TensorBoardLogger
from lit_mnist.model import MNISTClassifier
from lit_mnist.trainer import Trainer

# The post's run: 5,000 steps of batch 100. Everything else of the post is the model's and data's defaults.
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 5000,
    "logger": lazy_instance(TensorBoardLogger),
    # Always on: exact resume needs the RNG states; the test figures are part of every run's TensorBoard page.
    "callbacks": [RNGStateCheckpoint(), TestFigures()],
}
CHECKPOINT_DEFAULTS = {
    "monitor": "val/acc",
    "mode": "max",
    "save_last": True,
    "every_n_epochs": 1,
    "enable_version_counter": False,  # two callbacks share last.ckpt: each overwrites it rather than adding -v1
    "filename": "best-step={step}-val_acc={val/acc:.4f}",
    "auto_insert_metric_name": False,
}
SEED = 42

# Lightning 2.6 checks batches with a torch pytree test that torch 2.14 deprecates: a FutureWarning on every run that
# no user of this project can act on (Lightning has to change), so it is not shown.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)

# Redrawing the bar every step, Lightning's default, costs more than a training step of this small network.
PROGRESS_BAR_REFRESH_STEPS = 25


class OneLineErrorParser(LightningArgumentParser):
    """Reports a bad option in one line (what is wrong, where to look) instead of argparse's usage dump."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        message = " ".join(line.strip() for line in message.splitlines() if line.strip())
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {message} (see '{prog} --help')\n")
        self.exit(2)


class RunConfigSaver(SaveConfigCallback):
    """Lightning's config.yaml writer, which leaves the file alone when a resumed run continues in its own folder."""

    def __init__(self, *args: Any, keep_existing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_existing = keep_existing

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.keep_existing:
            self.already_saved = True
        super().setup(trainer, pl_module, stage)


class LitMNISTCLI(LightningCLI):
    """``python -m lit_mnist {fit,validate,test,predict,lr_find}``: see the README for every option."""

    def __init__(self, args: Optional[list[str]] = None, **kwargs: Any) -> None:
        super().__init__(
            MNISTClassifier,
            MNISTDataModule,
            trainer_class=Trainer,
            trainer_defaults=TRAINER_DEFAULTS,
            seed_everything_default=SEED,
            save_config_callback=RunConfigSaver,
            parser_class=OneLineErrorParser,
            auto_configure_optimizers=False,  # the model configures its own optimizer from its hyperparameters
            parser_kwargs={"prog": _program_name(), "description": __doc__.splitlines()[0]},
            args=args,
            **kwargs,
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # Each subcommand is the Trainer method of that name; the set lists its arguments the CLI fills in itself.
        return {**LightningCLI.subcommands(), "lr_find": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(PeriodicLastCheckpoint, "last_checkpoint")
        parser.set_defaults({f"checkpoint.{key}": value for key, value in CHECKPOINT_DEFAULTS.items()})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        _check_config_files(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        _check_options_lightning_leaves_unchecked(config)
        if subcommand == "predict" and not config.get("ckpt_path"):
            raise UserError(
                "predict needs a trained network: add --ckpt_path lightning_logs/version_N/checkpoints/last.ckpt"
            )
        if config.get("ckpt_path") == "last" and subcommand == "fit":
            config.ckpt_path = str(self._latest_run_checkpoint(config))
        if config.get("ckpt_path"):
            checkpoint = _load_checkpoint(config.ckpt_path)
            if subcommand == "fit":
                self._continue_in_run_folder(config, Path(config.ckpt_path), checkpoint["global_step"])

    def _runs_folder(self, config: Any) -> Optional[Path]:
        """Where the configured TensorBoard logger keeps its version_N folders (None for another logger or none)."""
        init_args = getattr(config.trainer.logger, "init_args", None)
        if init_args is None or "save_dir" not in init_args:
            return None
        return Path(init_args.save_dir) / (init_args.name or "")

    def _latest_run_checkpoint(self, config: Any) -> Path:
        """The last.ckpt of the newest run in the log folder whose model and data settings are this run's."""
        wanted = self._experiment(self.parser.dump(self.config, skip_none=False, format="yaml"), self.config.subcommand)
        runs = self._runs_folder(config)
        if runs is None:
            raise UserError(
                "--ckpt_path last finds runs through the TensorBoard logger's folders; give the path instead"
            )
        for folder in sorted(runs.glob("version_*"), key=_version_number, reverse=True):
            last, saved = folder / "checkpoints" / "last.ckpt", folder / "config.yaml"
            if last.is_file() and saved.is_file() and self._experiment(saved.read_text()) == wanted:
                return last
        raise UserError(
            f"--ckpt_path last: no run in {runs}/ with these model and data settings has a checkpoints/last.ckpt; "
            "start the run without --ckpt_path, or give the checkpoint's path"
        )

    @staticmethod
    def _experiment(config_yaml: str, subcommand: Optional[str] = None) -> dict[str, Any]:
        config = yaml.safe_load(config_yaml) or {}
        if subcommand:
            config = config.get(subcommand, {})
        return {key: config.get(key) for key in ("model", "data", "seed_everything")}

    def _continue_in_run_folder(self, config: Any, ckpt_path: Path, global_step: int) -> None:
        """Resuming a run's own checkpoint keeps logging into that run's version_N folder."""
        run = ckpt_path.resolve().parent.parent
        match = re.fullmatch(r"version_(\d+)", run.name)
        if ckpt_path.resolve().parent.name != "checkpoints" or not match:
            return
        runs = self._runs_folder(config)
        if runs is None or run.parent != runs.resolve():
            return
        config.trainer.logger.init_args.version = int(match.group(1))
        # Drop the events logged after this checkpoint by the interrupted process, so TensorBoard shows one curve.
        config.trainer.logger.init_args.purge_step = global_step
        self.save_config_kwargs["keep_existing"] = (run / "config.yaml").is_file()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        if self.subcommand == "predict":
            # Predictions are printed (and written to --output): no bar among them, and no run folder, config.yaml
            # or checkpoint for a command that trains nothing.
            config["enable_progress_bar"] = False
            config["logger"] = False
            config["enable_checkpointing"] = False
            self.save_config_callback = None
            # Lightning asks for the checkpoint callbacks of the run that made the checkpoint: they matter when
            # training goes on from it, not for predicting.
            warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(callback, ProgressBar) for callback in callbacks):
            kwargs["callbacks"] = [*callbacks, TQDMProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_STEPS)]
        try:
            return super().instantiate_trainer(**kwargs)
        except ValueError as error:  # the Trainer's own checks of its options, e.g. an unknown accelerator
            raise UserError(" ".join(str(error).split())) from None

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Trainer:
        # The checkpoint groups are always on the command line; `--trainer.enable_checkpointing false` switches
        # them off rather than clashing with them.
        if config.get("enable_checkpointing") is False:
            callbacks = [callback for callback in callbacks if not isinstance(callback, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def after_instantiate_classes(self) -> None:
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # keep a checkpoint_io that the user chose
            strategy.checkpoint_io = AtomicCheckpointIO()

    def after_fit(self) -> None:
        """Evaluate the trained network once on the test set, as the post does after training."""
        if self.trainer.interrupted:
            return
        self.trainer.test(self.model, datamodule=self.datamodule)

    def after_predict(self) -> None:
        if self.datamodule.unreadable:  # each has had its line; the exit status tells scripts that some failed
            sys.exit(1)


def _program_name() -> str:
    program = Path(sys.argv[0]).name
    return "python -m lit_mnist" if program in ("__main__.py", "") else program


def _check_options_lightning_leaves_unchecked(config: Any) -> None:
    """Values that Lightning accepts and then fails on mid-run (a division by zero, NumPy's seed range)."""
    seed = config.get("seed_everything")
    if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
        raise UserError(f"--seed_everything must be between 0 and {2**32 - 1} (or true for a random one), got {seed}")
    trainer = config.get("trainer") or {}
    for option in ("log_every_n_steps", "val_check_interval"):
        value = trainer.get(option)
        if value is not None and not value > 0:  # also catches NaN
            raise UserError(f"--trainer.{option} must be greater than 0, got {value}")


def _check_config_files(args: Any) -> None:
    """Name the --config file that is not YAML (jsonargparse's message quotes only the parser's complaint)."""
    if not isinstance(args, list):
        return
    for option, value in zip(args, args[1:]):
        if option in ("-c", "--config") and Path(value).is_file():
            try:
                yaml.safe_load(Path(value).read_text())
            except yaml.YAMLError as error:
                where = getattr(error, "problem_mark", None)
                at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
                raise UserError(f"--config {value} is not valid YAML{at}: {getattr(error, 'problem', error)}") from None


def _version_number(folder: Path) -> int:
    suffix = folder.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1


def _load_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint without running pickled code, turning every way it can be wrong into a UserError."""
    if not Path(path).is_file():
        raise UserError(f"--ckpt_path {path}: no such file; give the path of a .ckpt file (or 'last' with fit)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it is about to refuse: the error below says it all.
            warnings.simplefilter("ignore", UserWarning)
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"--ckpt_path {path} is not a readable PyTorch checkpoint: it holds objects other than tensors and plain "
            "data, which could run code when loaded, so it was not loaded"
        ) from None
    except Exception as error:  # a truncated or foreign file: zip, pickle and EOF errors have no common base class
        reason = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"--ckpt_path {path} is not a readable PyTorch checkpoint ({reason[:160]})") from None
    if not isinstance(checkpoint, dict) or not any(
        key.startswith("network.") for key in checkpoint.get("state_dict", {})
    ):
        raise UserError(f"--ckpt_path {path} is not a lit_mnist checkpoint (no network weights in it)")
    return checkpoint


def main(args: Optional[list[str]] = None) -> None:
    try:
        LitMNISTCLI(args=args)
    except UserError as error:
        sys.stderr.write(f"error: {error}\n")
        sys.exit(2)
    except MisconfigurationException as error:
        # Lightning's own checks of Trainer options: its messages name the option and the allowed values.
        sys.stderr.write(f"error: {' '.join(str(error).split())}\n")
        sys.exit(2)
