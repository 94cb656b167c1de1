"""What the network learned, in TensorBoard: gradients, speed, histograms, first-layer units, embeddings, PR curves.

Everything here runs when a validation or the test pass ends, or once per logging interval, never on the other
training steps. It is not free: on the seed run it took 7.6% of the training time, most of it in the drawings after
each validation (benchmarks/README.md, "Training throughput"); --tensorboard.every_n_validations draws less often.
"""

import time
from pathlib import Path
from typing import Any, Optional

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.fabric.utilities.throughput import Throughput
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import grad_norm
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics.utilities.distributed import gather_all_tensors
from torchvision.utils import make_grid

from lit_mnist.data.images import to_model_input
from lit_mnist.data.mnist_files import IMAGE_SIZE
from lit_mnist.model import ACTIVATIONS
from lit_mnist.run.errors import UserError

# The prefix of the histograms and the units' pictures. TIME SERIES sorts its groups by the tags' first part and opens
# the first two: "network" sorts after "acc" and "loss", so that the page opens on the curves.
NETWORK = "network"


class TensorBoardExtras(Callback):
    """Draws what the network learns into TensorBoard, each part switchable (0 or false turns it off).

    Args:
        gradient_norms: The 2-norm of each layer's gradients and of all of them, at every logging interval
            (Lightning's grad_norm), in SCALARS as train/grad_norm/...
        speed: Training steps and images per second over each logging interval, in SCALARS.
        histograms: Weights and biases of each layer, their gradients and each hidden layer's activations on a
            fixed batch of validation digits (none without them), at the start of training and after validations,
            in HISTOGRAMS and DISTRIBUTIONS.
        histogram_digits: How many validation digits (the first ones) the gradients and activations are taken on.
        first_layer_units: How many of layer1's units to draw as 28x28 pictures of their incoming weights, at the
            start of training and after validations, in IMAGES; beside them, what training has changed of those
            weights since the start.
        every_n_validations: Draw the histograms and the units after every n-th validation.
        embedding_digits: How many test digits the PROJECTOR shows, as their last hidden layer's activations with
            their pictures and true and predicted labels.
        pr_curves: One precision-recall curve per digit (that digit against the rest) from the test pass, in
            PR CURVES.
        config_text: The run's configuration (its config.yaml) in the TEXT tab.
    """

    def __init__(
        self,
        gradient_norms: bool = True,
        speed: bool = True,
        histograms: bool = True,
        histogram_digits: PositiveInt = 256,
        first_layer_units: NonNegativeInt = 64,
        every_n_validations: PositiveInt = 1,
        embedding_digits: NonNegativeInt = 2000,
        pr_curves: bool = True,
        config_text: bool = True,
    ) -> None:
        self.gradient_norms = gradient_norms
        self.speed = speed
        self.histograms = histograms
        self.histogram_digits = int(histogram_digits)
        self.first_layer_units = int(first_layer_units)
        self.every_n_validations = int(every_n_validations)
        self.embedding_digits = int(embedding_digits)
        self.pr_curves = pr_curves
        self.config_text = config_text
        self._fixed_batch: Optional[tuple[Tensor, Tensor]] = None
        self._validations = 0
        # Lightning's Throughput, over a window of two logging intervals: the speed of the last one. Its clock is read
        # at the logging intervals only, and never waits for a GPU.
        self._throughput: Optional[Throughput] = None
        self._first_step = self._last_step = self._images = 0
        self._units_at_start: Optional[Tensor] = None  # layer1's drawn units at step 0, kept in checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {} if self._units_at_start is None else {"units_at_start": self._units_at_start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._units_at_start = state_dict.get("units_at_start")

    # Training: gradient norms and speed, once per logging interval.

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Counted from this fit's first step: a resumed run's earlier steps took no time here.
        self._throughput, self._first_step = Throughput(window_size=2), trainer.global_step
        self._last_step, self._images = trainer.global_step, 0
        self._throughput.update(time=time.perf_counter(), batches=0, samples=0)
        if trainer.global_step == 0:  # the initialisation; a resumed run drew its state before it stopped
            self._draw_network(trainer, pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step % trainer.log_every_n_steps or self._throughput is None or step == self._last_step:
            return  # the only work of the steps between logging intervals
        figures = {}
        if self.gradient_norms:
            # The step's gradients are still in .grad: Lightning clears them before the next step's backward.
            norms = grad_norm(_network(pl_module), norm_type=2)
            figures.update({"train/grad_norm/" + name.split("/", 1)[-1]: value for name, value in norms.items()})
            figures["train/grad_norm/total"] = figures.pop("train/grad_norm/grad_2.0_norm_total")
        if self.speed:
            images_per_step = len(batch[1]) * trainer.accumulate_grad_batches * trainer.world_size
            self._images += (step - self._last_step) * images_per_step
            steps = step - self._first_step
            self._throughput.update(time=time.perf_counter(), batches=steps, samples=self._images)
            rates = self._throughput.compute()  # "device/": this process's clock; the images are every process's
            figures["train/steps_per_second"] = rates["device/batches_per_sec"]
            figures["train/images_per_second"] = rates["device/samples_per_sec"]
        self._last_step = step
        if figures:  # through Lightning, at the step of the same step's loss and accuracy
            pl_module.log_dict(figures)

    # After validations: histograms and the first layer's units.

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._validations += 1
        if self._validations % self.every_n_validations == 0:
            self._draw_network(trainer, pl_module)

    def _draw_network(self, trainer: Trainer, pl_module: LightningModule) -> None:
        experiment = summary_writer(trainer)
        if experiment is None or not (self.histograms or self.first_layer_units):
            return
        network, step = _network(pl_module), trainer.global_step
        linears = {name: module for name, module in network.named_children() if isinstance(module, nn.Linear)}
        if self.first_layer_units and linears:
            name, layer = next(iter(linears.items()))
            weights = layer.weight.detach()[: self.first_layer_units].cpu()
            if weights.shape[1] == IMAGE_SIZE * IMAGE_SIZE:
                experiment.add_image(f"{NETWORK}/{name}_units", _unit_grid(weights), step)
                if step == 0:
                    self._units_at_start = weights.clone()
                elif self._units_at_start is not None and self._units_at_start.shape == weights.shape:
                    # What training changed: the post's N(0, 1) start hides it in the weights themselves.
                    change = weights - self._units_at_start
                    experiment.add_image(f"{NETWORK}/{name}_units_change", _unit_grid(change), step)
        if self.histograms:
            for name, layer in linears.items():
                _add_histogram(experiment, f"{NETWORK}/weights/{name}", layer.weight.detach(), step)
                _add_histogram(experiment, f"{NETWORK}/biases/{name}", layer.bias.detach(), step)
            batch = self._batch(trainer, pl_module)
            if batch is not None:  # None in a run without validation
                activations, gradients = _activations_and_gradients(pl_module, network, *batch)
                for name, values in {**activations, **gradients}.items():
                    _add_histogram(experiment, name, values, step)
        experiment.flush()

    def _batch(self, trainer: Trainer, pl_module: LightningModule) -> Optional[tuple[Tensor, Tensor]]:
        """The first validation digits, prepared as the model sees them and never augmented, kept for the run; None
        when the run has none.

        Not through the data module's on_after_batch_transfer: during training it augments, drawing random numbers
        that training would then not draw."""
        if self._fixed_batch is None:
            if not trainer.limit_val_batches:  # validation is off (--data.val_size 0, or the spiral, which has none)
                return None
            images, labels = [], []
            for batch in trainer.datamodule.val_dataloader():
                images.append(to_model_input(batch[0].to(pl_module.device)))
                labels.append(batch[1].to(pl_module.device))
                if sum(len(part) for part in labels) >= self.histogram_digits:
                    break
            if not labels:
                return None
            self._fixed_batch = torch.cat(images)[: self.histogram_digits], torch.cat(labels)[: self.histogram_digits]
        return self._fixed_batch

    # The test pass: PR curves and the projector.

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._test: dict[str, list[Tensor]] = {"logits": [], "labels": [], "hidden": [], "images": []}
        self._hooks = []
        # Process 0 draws; under DDP the others send it their digits' figures.
        self._collecting = (self.pr_curves or self.embedding_digits > 0) and (
            summary_writer(trainer) is not None or trainer.world_size > 1
        )
        hidden = [module for module in _network(pl_module).children() if not isinstance(module, nn.Linear)][-1:]
        if self._collecting and hidden and self.embedding_digits:
            # The last hidden layer's output, which test_step does not return: its activation (or the dropout after
            # it).
            self._hooks.append(hidden[0].register_forward_hook(self._keep_hidden))

    def _keep_hidden(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if sum(len(part) for part in self._test["hidden"]) < self.embedding_digits:
            self._test["hidden"].append(output.detach())

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._collecting:
            return
        images, labels = batch
        self._test["logits"].append(outputs)  # test_step returns the logits
        self._test["labels"].append(labels)
        if sum(len(part) for part in self._test["images"]) < self.embedding_digits:
            self._test["images"].append(images)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for hook in self._hooks:
            hook.remove()
        if not self._test["logits"]:
            return
        probabilities = torch.cat(self._test["logits"]).float().softmax(dim=1)
        labels = torch.cat(self._test["labels"])
        if trainer.world_size > 1:  # every test digit, from every process (their shares differ in size)
            probabilities = torch.cat(gather_all_tensors(probabilities))
            labels = torch.cat(gather_all_tensors(labels))
        experiment = summary_writer(trainer)
        if experiment is None:
            return
        step = trainer.global_step
        if self.pr_curves:
            for digit in range(probabilities.shape[1]):  # each class: MNIST's 10 digits, the spiral's two arms
                experiment.add_pr_curve(f"test/pr_curve/{digit}", labels == digit, probabilities[:, digit], step)
        if self.embedding_digits and self._test["hidden"]:
            count = self.embedding_digits
            hidden = torch.cat(self._test["hidden"])[:count].float().cpu()
            images = torch.cat(self._test["images"])[:count].float().cpu()
            true, predicted = labels[: len(hidden)].tolist(), probabilities[: len(hidden)].argmax(dim=1).tolist()
            experiment.add_embedding(
                hidden,
                metadata=[[str(t), str(p), "right" if t == p else "wrong"] for t, p in zip(true, predicted)],
                metadata_header=["true", "predicted", "result"],
                label_img=images if images.dim() == 4 else None,  # pictures for images; the spiral's are points
                global_step=step,
                tag="last_hidden_layer_test",
            )
        experiment.flush()


class ConfigToTensorBoard(SaveConfigCallback):
    """Lightning's config.yaml writer, which also shows the configuration in TensorBoard's TEXT tab.

    Args:
        continued: The run goes on from its own last.ckpt, perhaps with more steps: its config.yaml is written again,
            without the ckpt_path, so that ``--config`` on it trains the run it holds from the start (resuming is
            exact, so that is the same network).
    """

    def __init__(self, parser: Any, config: Any, *args: Any, continued: bool = False, **kwargs: Any) -> None:
        if continued:
            config = config.clone()
            config.ckpt_path = None
            kwargs["overwrite"] = True
        super().__init__(parser, config, *args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        saved = Path(trainer.log_dir or ".") / self.config_filename
        if not self.already_saved and not self.overwrite and saved.is_file():  # Lightning would stop with a traceback
            without = " without a logger" if trainer.logger is None else ""
            raise UserError(
                f"{saved} exists: {saved.parent} already holds a run{without}; give this run a folder of its own with "
                "--trainer.default_root_dir, or remove that run"
            )
        try:
            super().setup(trainer, pl_module, stage)
        except OSError as error:  # the YAML writer does not say which file it could not write
            if error.filename is None and trainer.logger is not None and trainer.logger.log_dir is not None:
                error.filename = str(Path(trainer.logger.log_dir) / self.config_filename)
            raise

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        extras = [callback for callback in trainer.callbacks if isinstance(callback, TensorBoardExtras)]
        experiment = summary_writer(trainer)
        if experiment is None or not extras or not extras[0].config_text:
            return
        text = self.parser.dump(self.config, skip_none=False)
        # Indented four spaces: TensorBoard's markdown shows it as a code block, as config.yaml reads.
        experiment.add_text("config", "\n".join("    " + line for line in text.splitlines()), trainer.global_step)
        experiment.flush()


def _network(pl_module: LightningModule) -> nn.Module:
    return getattr(pl_module, "network", pl_module)


def summary_writer(trainer: Trainer) -> Any:
    """The TensorBoard SummaryWriter on process 0; None elsewhere or with another logger."""
    experiment = getattr(trainer.logger, "experiment", None)
    return experiment if trainer.is_global_zero and hasattr(experiment, "add_histogram") else None


def _add_histogram(experiment: Any, tag: str, values: Tensor, step: int) -> None:
    """SummaryWriter.add_histogram of the finite values: a divergence watched with --divergence.stop false has
    others, which NumPy cannot sort into buckets."""
    values = values.detach().float().flatten()
    values = values[torch.isfinite(values)]
    if values.numel():
        experiment.add_histogram(tag, values, step)


def _unit_grid(weights: Tensor) -> Tensor:
    """Each unit's 784 incoming weights as a 28x28 tile, grey for 0, white for its largest positive weight: one
    grey channel of bytes (1 x H x W)."""
    tiles = weights.float().view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
    scale = tiles.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
    grid = make_grid(tiles / scale * 0.5 + 0.5, nrow=8, padding=2, pad_value=0.0)[:1]  # its 3 channels are equal
    return (grid * 255).round().to(torch.uint8).cpu()


def _activations_and_gradients(
    pl_module: LightningModule, network: nn.Module, images: Tensor, labels: Tensor
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Each hidden layer's output on the batch, and the gradient of the loss on it for each weight and bias.

    In eval mode (no dropout, so no random numbers are drawn) and with torch.autograd.grad, which leaves the
    parameters' .grad, and so the training, untouched.
    """
    activations: dict[str, Tensor] = {}
    tag = f"{NETWORK}/activations/{{}}"
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: activations.__setitem__(tag.format(name), out))
        for name, module in network.named_children()
        if isinstance(module, tuple(ACTIVATIONS.values()))
    ]
    was_training = pl_module.training
    pl_module.eval()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(pl_module(images), labels)
            parameters = dict(network.named_parameters())
            grads = torch.autograd.grad(loss, list(parameters.values()))
    finally:
        pl_module.train(was_training)
        for hook in hooks:
            hook.remove()
    gradients = {f"{NETWORK}/gradients/{name}": grad for name, grad in zip(parameters, grads)}
    return {name: value.detach() for name, value in activations.items()}, gradients
