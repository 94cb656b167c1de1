"""Lightning's Trainer with the commands this project adds: predictions printed, the LR finder, ONNX export and a
server.

LightningCLI makes a subcommand of each Trainer method it is told about, with the method's arguments as options, so
they live here.
"""

import math
from pathlib import Path
from typing import Any, Literal, Optional

import lightning.pytorch as pl
import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch.tuner import Tuner
from matplotlib.figure import Figure

from lit_mnist.run.errors import UserError, needs_extra
from lit_mnist.run.options import NonNegativeFiniteFloat, Port, PositiveFiniteFloat
from lit_mnist.run.predictions import PredictionWriter


class Trainer(pl.Trainer):
    """Lightning's Trainer, whose predict also prints its results, with lr_find, export and serve methods.

    fit, validate and test are Lightning's own, with docstrings that say what each does here: the command line's
    help is made of them.
    """

    def fit(
        self,
        model: pl.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: Optional[pl.LightningDataModule] = None,
        ckpt_path: Optional[str] = None,
        weights_only: Optional[bool] = None,
    ) -> None:
        """Train the network, then test its final weights once on the test digits, as the post does.

        Args:
            model: The network.
            train_dataloaders: Training batches; by default the data module's.
            val_dataloaders: Validation batches; by default the data module's.
            datamodule: The digits.
            ckpt_path: A checkpoint to go on from: "last" (the newest run with the same settings) or a run's
                checkpoints/last.ckpt continues that run in its folder; any other checkpoint starts a new run from it.
            weights_only: Load only tensors and plain data from the checkpoint.
        """
        super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)

    def validate(
        self,
        model: Optional[pl.LightningModule] = None,
        dataloaders: Any = None,
        ckpt_path: Optional[str] = None,
        verbose: bool = True,
        datamodule: Optional[pl.LightningDataModule] = None,
        weights_only: Optional[bool] = None,
    ) -> list[dict[str, float]]:
        """Evaluate a checkpoint on the 5,000 validation digits.

        Args:
            model: The network.
            dataloaders: Validation batches; by default the data module's.
            ckpt_path: The checkpoint to evaluate, e.g. lightning_logs/version_0/checkpoints/last.ckpt.
            verbose: Print the figures.
            datamodule: The digits.
            weights_only: Load only tensors and plain data from the checkpoint.
        """
        return super().validate(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def test(
        self,
        model: Optional[pl.LightningModule] = None,
        dataloaders: Any = None,
        ckpt_path: Optional[str] = None,
        verbose: bool = True,
        datamodule: Optional[pl.LightningDataModule] = None,
        weights_only: Optional[bool] = None,
    ) -> list[dict[str, float]]:
        """Evaluate a checkpoint on the 10,000 test digits.

        Args:
            model: The network.
            dataloaders: Test batches; by default the data module's.
            ckpt_path: The checkpoint to evaluate, e.g. lightning_logs/version_0/checkpoints/last.ckpt.
            verbose: Print the figures.
            datamodule: The digits.
            weights_only: Load only tensors and plain data from the checkpoint.
        """
        return super().test(model, dataloaders, ckpt_path, verbose, datamodule, weights_only)

    def predict(
        self,
        model: Optional[pl.LightningModule] = None,
        dataloaders: Any = None,
        datamodule: Optional[pl.LightningDataModule] = None,
        return_predictions: Optional[bool] = None,
        ckpt_path: Optional[str] = None,
        weights_only: Optional[bool] = None,
        output: Optional[Path] = None,
    ) -> Optional[list[Any]]:
        """Predict the digit in each of your images: one line per file, and a CSV file if you ask for one.

        Args:
            model: The network.
            dataloaders: Batches of (images, indices) to predict; by default the data module's.
            datamodule: Reads the images given with --data.predict_path.
            return_predictions: Also keep all predictions in memory and return them (only useful from Python).
            ckpt_path: The trained network's checkpoint, e.g. lightning_logs/version_0/checkpoints/last.ckpt.
            weights_only: Load only tensors and plain data from the checkpoint.
            output: Also write the predictions to this CSV file (columns file, digit, probability). It must not
                exist yet: nothing is overwritten.
        """
        if output is not None and Path(output).exists():
            raise UserError(f"--output {output} already exists; choose another file name or move it away")
        # One writer per call: a second predict from Python replaces the first's rather than printing twice.
        others = [callback for callback in self.callbacks if not isinstance(callback, PredictionWriter)]
        self.callbacks = [*others, PredictionWriter(output)]
        return super().predict(model, dataloaders, datamodule, return_predictions, ckpt_path, weights_only)

    def export(
        self,
        model: pl.LightningModule,
        datamodule: Optional[pl.LightningDataModule] = None,
        ckpt_path: Optional[str] = None,
        output: Path = Path("model.onnx"),
    ) -> None:
        """Export a checkpoint's network as ONNX, for ONNX Runtime and other tools outside Python's training stack.

        The file's input is ``images`` (float32, N x 1 x 28 x 28, pixels in [0, 1], any N) and its output ``logits``
        (N x 10), as the model's forward. An existing file is never overwritten.

        Args:
            ckpt_path: The checkpoint to export (a run's last.ckpt or a best one).
            output: The ONNX file to create.
        """
        with needs_extra("export", "export"):  # an extra: onnx and onnxscript, which torch's exporter needs
            from lit_mnist.serving.onnx_export import export_onnx
        _load_weights(model, ckpt_path, "export")
        export_onnx(model, Path(output))
        print(f"Exported {ckpt_path} to {output}")

    def serve(
        self,
        model: pl.LightningModule,
        datamodule: Optional[pl.LightningDataModule] = None,
        ckpt_path: Optional[str] = None,
        host: Literal["127.0.0.1", "0.0.0.0", "::"] = "127.0.0.1",
        port: Port = 8000,
        max_batch_size: PositiveInt = 8,
        batch_timeout: NonNegativeFiniteFloat = 0.002,
        workers: PositiveInt = 1,
        access_log: bool = False,
    ) -> None:
        """Serve a checkpoint's network: a page to draw digits on at /, and the HTTP API POST /predict.

        The API takes {"image": "<base64 of a PNG or JPEG file>"} and answers {"digit", "probabilities",
        "preview"}; each picture is prepared exactly as predict prepares files. Ctrl-C or SIGTERM stops the server.

        Args:
            ckpt_path: The checkpoint to serve (a run's last.ckpt or a best one).
            host: The address to listen on. 127.0.0.1 is this machine only; 0.0.0.0 (or :: for IPv6) is every
                network this machine is on: anyone who can reach it can use the page and the API.
            port: The TCP port (1024 to 65535).
            max_batch_size: Most concurrent requests the network answers in one batch (1: each on its own).
            batch_timeout: Seconds a batch waits for more requests before it runs.
            workers: Inference worker processes, each with its own copy of the network.
            access_log: Print a line for each request.
        """
        # Imported here: the web stack (LitServe, FastAPI, uvicorn) is an extra, and would slow every other command.
        with needs_extra("serve", "serve"):
            from lit_mnist.serving.server import build_server, serve

        _load_weights(model, ckpt_path, "serve")
        server = build_server(model, int(max_batch_size), float(batch_timeout), int(workers))
        serve(server, host, int(port), access_log)

    def lr_find(
        self,
        model: pl.LightningModule,
        datamodule: Optional[pl.LightningDataModule] = None,
        min_lr: PositiveFiniteFloat = 1e-6,
        max_lr: PositiveFiniteFloat = 1.0,
        num_training: PositiveInt = 100,
        early_stop_threshold: Optional[PositiveFiniteFloat] = 4.0,
    ) -> Optional[float]:
        """Find a learning rate: Lightning's LR range test, with the loss-vs-rate plot saved and logged.

        The rate grows exponentially from min_lr to max_lr over num_training steps while the training loss is
        recorded; the suggestion is where the loss falls fastest. The plot goes to lr_find.png in the run's folder and
        to TensorBoard's IMAGES tab.

        Args:
            model: The network, with its optimizer settings (any schedule is replaced by the finder's).
            datamodule: The training data.
            min_lr: Smallest rate tried.
            max_lr: Largest rate tried.
            num_training: Steps of the test, one rate each.
            early_stop_threshold: Stop when the loss exceeds this multiple of the best loss so far (null: never).
        """
        if not min_lr < max_lr:
            raise UserError(f"--min_lr ({min_lr}) must be smaller than --max_lr ({max_lr})")
        finder = Tuner(self).lr_find(
            model,
            datamodule=datamodule,
            min_lr=float(min_lr),
            max_lr=float(max_lr),
            num_training=int(num_training),
            early_stop_threshold=None if early_stop_threshold is None else float(early_stop_threshold),
            update_attr=False,
        )
        if finder is None or not self.is_global_zero:
            return None
        suggestion = finder.suggestion()
        figure = lr_find_figure(finder, suggestion)
        experiment = self.logger.experiment if self.logger is not None else None  # creates the run's folder
        folder = Path(self.log_dir or self.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        plot = folder / "lr_find.png"
        figure.savefig(plot, dpi=100)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure("lr_find", figure)
            experiment.flush()
        if suggestion is None or not math.isfinite(suggestion):
            print(f"No learning rate to suggest: the loss never fell steadily. Plot: {plot}")
            return None
        rate = f"{suggestion:.3g}"
        print(f"Suggested learning rate: {rate} (--model.learning_rate {rate}), where the loss fell fastest: a place "
              "to start. The plot shows where the loss falls and where it blows up; a rate between the two, well "
              f"below the blow-up, often trains faster. Plot: {plot}")  # fmt: skip
        return suggestion


def lr_find_figure(finder: Any, suggestion: Optional[float]) -> Figure:
    """Lightning's plot of the finder's losses, on a log scale: one spike of the post's huge early losses would
    flatten the rest of the curve on a linear one."""
    # A Figure of its own rather than pyplot's: drawing here must not switch the backend of a notebook.
    figure = Figure()
    axes = figure.add_subplot()
    finder.plot(suggest=suggestion is not None, ax=axes)
    axes.set_yscale("log")
    axes.set_ylabel("Training loss (smoothed, log scale)")
    axes.set_title("Training loss while the learning rate grows")
    return figure


def _load_weights(model: pl.LightningModule, ckpt_path: Optional[str], command: str) -> None:
    """Load a checkpoint's weights into ``model`` (the CLI has built it with the checkpoint's hyperparameters)."""
    if ckpt_path is None:
        raise UserError(f"{command} needs a checkpoint: give it with --ckpt_path (a run's checkpoints/last.ckpt)")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
