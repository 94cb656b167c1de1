"""Train, evaluate and use the post's deeper MNIST network: LightningCLI with the post's experiment as defaults."""

import logging
import math
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from lit_mnist.data import MNISTDataModule
from lit_mnist.model import MNISTClassifier
from lit_mnist.run.callbacks import (
    FinalCheckpoint,
    FinalValidation,
    LineEndingProgressBar,
    RNGStateCheckpoint,
    RunSummary,
)
from lit_mnist.run.checkpoints import AtomicCheckpointIO, read_checkpoint, with_data_options
from lit_mnist.run.errors import ONE_LINE_ERRORS, UserError, one_line, quiet_write_failures, write_failure
from lit_mnist.run.folders import claim_new_run, continued_run, latest_run_checkpoint, run_settings, runs_folder
from lit_mnist.run.options import OneLineErrorParser, check_config_files, check_values, program_name
from lit_mnist.run.stopping import DivergenceCheck, SignalStop, signals_stop_training
from lit_mnist.tensorboard.extras import ConfigToTensorBoard, TensorBoardExtras
from lit_mnist.tensorboard.figures import TestFigures
from lit_mnist.tensorboard.logger import TensorBoardLogger
from lit_mnist.trainer import Trainer

# The post's run: 5,000 steps of batch 100. Everything else of the post is the model's and data's defaults.
TRAINER_DEFAULTS: dict[str, Any] = {
    "max_steps": 5000,
    "log_every_n_steps": 50,
    "logger": {"class_path": f"{TensorBoardLogger.__module__}.{TensorBoardLogger.__qualname__}"},
    # RunSummary prints the network's layers: Lightning's model summary would list the metric objects too.
    "enable_model_summary": False,
}


# Two checkpoint callbacks refresh last.ckpt: the best model's beside each new best, and the other every
# every_n_train_steps steps, so that a crash loses at most that many; FinalCheckpoint writes it when training ends.
# Each overwrites the file rather than adding last-v1.ckpt.
CHECKPOINT_DEFAULTS = {
    "checkpoint": {"monitor": "acc/val", "mode": "max", "save_last": True, "every_n_epochs": 1,
                   "filename": "best-step={step}-val_acc={acc/val:.4f}", "auto_insert_metric_name": False},
    "last_checkpoint": {"every_n_train_steps": 500, "save_top_k": 0, "save_last": True},
}  # fmt: skip
SEED = 42
# The subcommands that train nothing, and so make no run: no run folder, config.yaml or checkpoint.
NO_RUN_SUBCOMMANDS = ("validate", "test", "predict", "export", "serve")

# Lightning 2.6 calls a torch pytree test that torch 2.14 deprecates: a warning on every run that no user can act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)

# sweep is a command of its own (lit_mnist/sweep/command.py), run before LightningCLI sees the command line: the
# main help names it after Lightning's subcommands.
SWEEP_HELP = (
    'sweep: Search the post\'s "alchemy" of hyperparameters with Optuna: trials of fit with other depths, widths and '
    "learning rates (python -m lit_mnist sweep --help)."
)

# Redrawing the bar at every step costs more than a step of this small network; its figures change every 50 steps.
PROGRESS_BAR_REFRESH_STEPS = 50


class LitMNISTCLI(LightningCLI):
    """``python -m lit_mnist {fit,validate,test,predict,lr_find,export,serve}``: see the README for every option."""

    def __init__(
        self, args: Optional[list[str]] = None, datamodule_class: type = MNISTDataModule, **kwargs: Any
    ) -> None:
        self._claimed_runs: list[Path] = []  # folders this command created for its run, innermost last
        try:
            super().__init__(
                MNISTClassifier,
                datamodule_class,
                trainer_class=Trainer,
                trainer_defaults={**TRAINER_DEFAULTS, "callbacks": self.persistent_callbacks()},
                seed_everything_default=SEED,
                parser_class=OneLineErrorParser,
                save_config_callback=ConfigToTensorBoard,
                auto_configure_optimizers=False,  # the model configures its own optimizer from its hyperparameters
                # An option is taken by its full name only: argparse's abbreviations take --model.lr for
                # --model.lr_schedule. A near-miss gets "did you mean" instead (run/options.py).
                parser_kwargs={
                    "prog": program_name(),
                    "description": __doc__.splitlines()[0],
                    "allow_abbrev": False,
                    "epilog": SWEEP_HELP,
                    **{name: {"allow_abbrev": False} for name in self.subcommands()},
                },
                args=args,
                **kwargs,
            )
        except UserError:
            raise
        except ValueError as error:
            # jsonargparse wraps a class's own check when the class was chosen by its class_path (the spiral's).
            if isinstance(error.__cause__, UserError):
                raise error.__cause__ from None
            raise
        except Exception as error:
            logger = getattr(getattr(self, "trainer", None), "logger", None)  # None if the error came before it
            run = Path(logger.log_dir) if logger is not None and logger.log_dir else None
            failure = write_failure(error, run or (self._claimed_runs[-1] if self._claimed_runs else None))
            if failure is None:
                raise
            raise failure from None
        finally:
            # A run stopped before it wrote anything (bad data, say) leaves no empty folder behind.
            for folder in reversed(self._claimed_runs):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()

    def persistent_callbacks(self) -> list[Callback]:
        """The callbacks of every run, new for each CLI (a notebook or a test makes several in one process)."""
        # FinalCheckpoint before SignalStop: a signal during the last validation stops a run whose last.ckpt is final.
        return [RNGStateCheckpoint(), TestFigures(), FinalValidation(), FinalCheckpoint(), RunSummary(), SignalStop()]

    def validates(self, config: Any) -> bool:
        """Whether the run holds digits back for validation."""
        return config.data.val_size > 0

    def check_checkpoint(self, checkpoint: dict[str, Any], subcommand: str) -> None:
        """Refuse, in one line, a checkpoint of a network for other data than MNIST's digits (the spiral's)."""
        shape = (checkpoint.get("hyper_parameters") or {}).get("input_shape", MNISTDataModule.input_shape)
        if list(shape) != MNISTDataModule.input_shape:
            raise UserError(
                f"{subcommand} takes MNIST digits, and this checkpoint's network takes {math.prod(shape)} numbers, not "
                "a 28x28 image: it was trained on the playground's spiral; give its run's --config "
                "lightning_logs/version_N/config.yaml to use it with that data"
            )

    def data_options(self, command_line: list[str], subcommand: str, checkpoint: dict[str, Any]) -> list[str]:
        """The command line that evaluates a checkpoint on the data it was trained on."""
        return with_data_options(command_line, subcommand, checkpoint)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # Each subcommand is the Trainer method of that name; the set lists its arguments the CLI fills in itself.
        filled_in = {"model", "datamodule"}
        return {**LightningCLI.subcommands(), "lr_find": filled_in, "export": filled_in, "serve": filled_in}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The network's input and output sizes are the data's (Lightning's documented argument linking).
        parser.link_arguments("data.input_shape", "model.input_shape", apply_on="instantiate")
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.add_lightning_class_args(TensorBoardExtras, "tensorboard")
        levels = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
        help = "The level of Lightning's log messages shown: INFO adds its lines on devices, seed and restores"
        parser.add_argument("--log_level", type=levels, default="WARNING", help=help)
        help = "Log the learning rate and momentum at every logging interval (Lightning's LearningRateMonitor)"
        parser.add_argument("--learning_rate_monitor", type=bool, default=True, help=help)
        parser.add_lightning_class_args(DivergenceCheck, "divergence")
        for group, defaults in CHECKPOINT_DEFAULTS.items():
            parser.add_lightning_class_args(ModelCheckpoint, group)
            parser.set_defaults({f"{group}.{key}": value for key, value in defaults.items()})
            parser.set_defaults({f"{group}.enable_version_counter": False})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        command_line = sys.argv[1:] if args is None else args
        check_config_files(command_line)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        for name in ("lightning.pytorch", "lightning.fabric"):  # Lightning's documented way to quieten it
            logging.getLogger(name).setLevel(config.log_level)
        if config.get("ckpt_path") == "last" and subcommand == "fit":
            wanted = run_settings(self.parser.dump(self.config, skip_none=False, format="yaml"), subcommand)
            config.ckpt_path = str(latest_run_checkpoint(runs_folder(config), wanted))
        # Lightning reads the model's settings from the checkpoint right after this method, with a torch.load that
        # would end in a traceback on a bad file: each way a file can be wrong gets its line here first.
        checkpoint = read_checkpoint(config.ckpt_path) if config.get("ckpt_path") else None
        if checkpoint is not None:
            self.check_checkpoint(checkpoint, subcommand)
        if checkpoint is not None and subcommand != "fit" and isinstance(command_line, list):
            # Evaluating a run's checkpoint reads the data that run was trained on, unless the command line says not.
            self.config = parser.parse_args(self.data_options(command_line, subcommand, checkpoint))
            config = self.config[subcommand]
        check_values(config, training=subcommand in ("fit", "lr_find"))
        if subcommand in ("validate", "test", "predict") and checkpoint is None:  # not an untrained network's 10%
            raise UserError(
                f"{subcommand} needs a trained network: add --ckpt_path lightning_logs/version_N/checkpoints/last.ckpt"
            )
        continuing = checkpoint is not None and subcommand == "fit"
        run = continued_run(config, Path(config.ckpt_path), checkpoint) if continuing else None
        if run is not None:  # config.yaml describes the run it now holds: the same settings, with this plan
            self.save_config_kwargs = {**self.save_config_kwargs, "continued": True}

    def _of_subcommand(self, config: Any) -> Any:
        """The subcommand's part of a configuration (all of it when the CLI was made with run=False)."""
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        config = self._of_subcommand(self.config)
        if not self.validates(config):
            # No validation digits: Lightning's own switch turns validation off, and with nothing to choose a best
            # checkpoint by, last.ckpt (saved at the end) is the run's model.
            config.trainer.limit_val_batches = 0
            if str(config.checkpoint.monitor).endswith("/val"):
                config.checkpoint.monitor, config.checkpoint.save_top_k = None, 0
        # Process 0 alone: the others never write, and Lightning takes the run's folder from it.
        if self.subcommand not in NO_RUN_SUBCOMMANDS and rank_zero_only.rank == 0:
            self._claimed_runs += claim_new_run(config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._of_subcommand(self.config_init).get("trainer") or {}
        callbacks = list(config.get("callbacks") or [])
        if self.subcommand in NO_RUN_SUBCOMMANDS:
            # They train nothing: no run folder, config.yaml or checkpoint; their results are printed or written.
            config["logger"] = False
            config["enable_checkpointing"] = False
            self.save_config_callback = None
            # Lightning asks for the checkpoint callbacks of the run that made the checkpoint: they matter when
            # training goes on from it, not for evaluating or exporting it.
            warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`, callbacks")
        if self.subcommand == "predict":
            config["enable_progress_bar"] = False  # predictions are printed: no bar among them
        if config.get("fast_dev_run"):  # a trial of the code, which Lightning's docs say saves no checkpoint
            config["enable_checkpointing"] = False
        wants_monitor = self._of_subcommand(self.config_init).get("learning_rate_monitor")
        if wants_monitor and config.get("logger") not in (None, False) and self.subcommand not in NO_RUN_SUBCOMMANDS:
            callbacks.append(LearningRateMonitor(logging_interval="step", log_momentum=True))
            kwargs["callbacks"] = callbacks
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(callback, ProgressBar) for callback in callbacks):
            kwargs["callbacks"] = [*callbacks, LineEndingProgressBar(refresh_rate=PROGRESS_BAR_REFRESH_STEPS)]
        try:
            return super().instantiate_trainer(**kwargs)
        except ValueError as error:  # the Trainer's own checks of its options, e.g. an unknown accelerator
            raise UserError(" ".join(str(error).split())) from None

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Trainer:
        # `--trainer.enable_checkpointing false` (or fast_dev_run) switches the --checkpoint group off rather than
        # clashing with it.
        # Private: the one place where the group's callbacks come before the Trainer checks them (a test guards it).
        if config.get("enable_checkpointing") is False:
            callbacks = [callback for callback in callbacks if not isinstance(callback, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def after_instantiate_classes(self) -> None:
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:  # keep a checkpoint_io that the user chose
            strategy.checkpoint_io = AtomicCheckpointIO()

    def fit(self, **kwargs: Any) -> None:
        """Lightning's fit, with Ctrl-C and SIGTERM stopping it cleanly from its first moment (LightningCLI runs a
        method of the CLI named after the subcommand in place of the Trainer's)."""
        with signals_stop_training(self.trainer):
            self.trainer.fit(**kwargs)

    def after_fit(self) -> None:
        """Evaluate the trained network once on the test set, as the post does after training."""
        if self.trainer.interrupted:
            return
        self.trainer.test(self.model, datamodule=self.datamodule)
        logger = self.trainer.logger
        if self.trainer.is_global_zero and logger is not None and logger.save_dir is not None:
            run, runs = Path(logger.log_dir), Path(logger.root_dir)  # Path drops the "./" of the default save_dir
            print(f"Run folder: {run}. See it in TensorBoard: tensorboard --logdir {runs}")

    def after_predict(self) -> None:
        if self.datamodule.unreadable:  # each has had its line; the exit status tells scripts that some failed
            sys.exit(1)


def main(args: Optional[list[str]] = None, cli_class: type[LitMNISTCLI] = LitMNISTCLI) -> None:
    command_line = sys.argv[1:] if args is None else list(args)
    threading.excepthook = quiet_write_failures
    try:
        cli_class(args=args)
    except ONE_LINE_ERRORS as error:
        line, exit_code = one_line(error, command_line)
        sys.stderr.write(f"{line}\n")
        sys.exit(exit_code)
    # torch asks each process to destroy its process group before it exits. Lightning does so for NCCL only, and a
    # gloo group left to the interpreter's teardown can abort or hang the process (pytorch/pytorch#190489).
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
