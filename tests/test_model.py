import csv
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.nn import functional as F

from lit_mnist.data import MNISTDataModule
from lit_mnist.data.images import to_model_input
from lit_mnist.model import MNISTClassifier, fold_batch_norm, fold_linear_layers
from lit_mnist.trainer import Trainer


def linear_layers(model: MNISTClassifier) -> dict[str, torch.nn.Linear]:
    return {name: module for name, module in model.network.named_children() if isinstance(module, torch.nn.Linear)}


def test_the_posts_network_by_default():
    layers = linear_layers(MNISTClassifier())
    assert list(layers) == ["layer1", "layer2", "layer3"]
    assert [(layer.in_features, layer.out_features) for layer in layers.values()] == [(784, 500), (500, 500), (500, 10)]


def test_hidden_sizes_set_depth_and_width_and_keep_the_names():
    layers = linear_layers(MNISTClassifier(hidden_sizes=[64, 32, 16]))
    assert list(layers) == ["layer1", "layer2", "layer3", "layer4"]
    assert [layer.out_features for layer in layers.values()] == [64, 32, 16, 10]
    assert MNISTClassifier(hidden_sizes=[64, 32, 16])(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_normal_init_is_the_posts_stddev_one_and_zero_bias():
    torch.manual_seed(0)
    for layer in linear_layers(MNISTClassifier(init="normal")).values():
        assert layer.weight.std().item() == pytest.approx(1.0, abs=0.02)
        assert layer.weight.mean().item() == pytest.approx(0.0, abs=0.02)
        assert torch.count_nonzero(layer.bias) == 0


def test_kaiming_init_scales_with_fan_in():
    torch.manual_seed(0)
    for layer in linear_layers(MNISTClassifier(init="kaiming")).values():
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / layer.in_features), rel=0.05)


def test_relu_between_layers_and_logits_at_the_end():
    names = [name for name, _ in MNISTClassifier().network.named_children()]
    assert names == ["layer1", "relu1", "layer2", "relu2", "layer3"]
    names = [name for name, _ in MNISTClassifier(dropout=0.5).network.named_children()]
    assert names == ["layer1", "relu1", "dropout1", "layer2", "relu2", "dropout2", "layer3"]
    names = [name for name, _ in MNISTClassifier(batch_norm=True).network.named_children()]
    assert names == ["layer1", "norm1", "relu1", "layer2", "norm2", "relu2", "layer3"]


def test_batch_norm_folds_into_the_posts_network_with_the_same_outputs():
    torch.manual_seed(0)
    model = MNISTClassifier(init="kaiming", batch_norm=True)
    for _ in range(3):  # running statistics and affine parameters away from their identity start
        model(torch.rand(64, 1, 28, 28))
    for norm in (model.network.norm1, model.network.norm2):
        torch.nn.init.uniform_(norm.weight, 0.5, 2.0)
        torch.nn.init.uniform_(norm.bias, -1.0, 1.0)
    model.eval()
    folded = fold_batch_norm(model.network)
    assert [name for name, _ in folded.named_children()] == ["layer1", "relu1", "layer2", "relu2", "layer3"]
    plain = MNISTClassifier().network
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in plain.parameters()) == 648_010
    images = torch.rand(16, 784)
    with torch.no_grad():
        assert torch.allclose(folded(images), model.network(images), atol=1e-4)
    assert len(model.network) == 7  # the model itself keeps its BatchNorm layers


def test_fold_batch_norm_needs_eval_mode():
    with pytest.raises(ValueError, match="eval"):
        fold_batch_norm(MNISTClassifier(batch_norm=True).network)


def test_sgd_at_the_configured_learning_rate():
    model = MNISTClassifier(learning_rate=0.001)
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == 0.001
    assert optimizer.param_groups[0]["momentum"] == 0.0


class StubTrainer:
    """What configure_optimizers reads of the Trainer: how many optimizer steps the run will take."""

    estimated_stepping_batches = 100


@pytest.mark.parametrize(
    "schedule, expected",
    [
        # step -> learning rate, for a peak rate of 0.01 over 100 steps
        ("cosine", {0: 0.01, 50: 0.005, 100: 0.0}),
        ("onecycle", {0: 0.01 / 25, 30: 0.01, 99: 0.01 / 25 / 1e4}),
        ("constant", {0: 0.01, 50: 0.01, 100: 0.01}),
    ],
)
def test_learning_rate_schedules_over_the_run(schedule, expected):
    model = MNISTClassifier(learning_rate=0.01, optimizer="adamw", lr_schedule=schedule)
    model.trainer = StubTrainer()
    configured = model.configure_optimizers()
    if schedule == "constant":
        optimizer, scheduler = configured, None
    else:
        optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
        assert configured["lr_scheduler"]["interval"] == "step"
    rates = {}
    for step in range(101):
        rates[step] = optimizer.param_groups[0]["lr"]
        if scheduler is not None and step < 99 + (schedule == "cosine"):
            optimizer.step()
            scheduler.step()
    for step, rate in expected.items():
        assert rates[step] == pytest.approx(rate, rel=1e-3, abs=1e-9), (schedule, step)


def test_validation_and_test_figures_count_every_digit_of_the_pass_once(tiny_data):
    # Batches of 7 leave a short last batch: a mean of batch means, or a batch counted twice or not at all, shows.
    torch.manual_seed(0)
    model = MNISTClassifier(init="kaiming")
    datamodule = MNISTDataModule(data_dir=str(tiny_data), batch_size=7, val_size=100)
    trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    figures = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    figures |= trainer.test(model, datamodule=datamodule, verbose=False)[0]
    for stage, split in (("val", datamodule.val_data), ("test", datamodule.test_data)):
        images, labels = split
        with torch.no_grad():
            logits = model(to_model_input(images))
        assert figures[f"loss/{stage}"] == pytest.approx(F.cross_entropy(logits, labels.long()).item(), rel=1e-5)
        assert figures[f"acc/{stage}"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert len(datamodule.val_data[1]) == 100 and len(datamodule.test_data[1]) == 200


class RecordBatchFigures(Callback):
    """Each training batch's loss and accuracy, computed from the batch by the model as it was at that step."""

    def __init__(self) -> None:
        self.figures: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        images, labels = batch
        with torch.no_grad():
            logits = pl_module(images)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        self.figures.append((F.cross_entropy(logits, labels).item(), accuracy))


def test_val_size_0_leaves_every_training_digit_to_training(tiny_data):
    data = MNISTDataModule(str(tiny_data), download=False, val_size=0)
    data.setup("fit")
    assert len(data.train_data[1]) == 600 and list(data.val_dataloader()) == []


def test_training_figures_are_the_logged_steps_batch_figures_as_the_post_prints(tiny_data, tmp_path):
    # The post prints the cost and accuracy of the step's batch every 100 steps; Lightning writes every
    # log_every_n_steps, at its step counter (0 for the first step).
    torch.manual_seed(0)
    model = MNISTClassifier(init="kaiming", learning_rate=0.01)
    datamodule = MNISTDataModule(data_dir=str(tiny_data), batch_size=7, val_size=100)
    record = RecordBatchFigures()
    trainer = Trainer(
        max_steps=30,
        log_every_n_steps=10,
        logger=CSVLogger(tmp_path),
        callbacks=[record],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=datamodule)
    metrics = Path(trainer.logger.log_dir, "metrics.csv").read_text().splitlines()
    rows = [row for row in csv.DictReader(metrics) if row["loss/train"]]
    assert [int(row["step"]) for row in rows] == [9, 19, 29]
    for row in rows:
        loss, accuracy = record.figures[int(row["step"])]
        assert float(row["loss/train"]) == pytest.approx(loss, rel=1e-5)
        assert float(row["acc/train"]) == pytest.approx(accuracy)


@pytest.mark.parametrize("activation, kind", [("relu", torch.nn.ReLU), ("sigmoid", torch.nn.Sigmoid),
                                              ("tanh", torch.nn.Tanh), ("identity", torch.nn.Identity)])  # fmt: skip
def test_each_activation_of_the_post_between_the_layers(activation, kind):
    network = MNISTClassifier(activation=activation).network
    names = [name for name, _ in network.named_children()]
    assert names == ["layer1", f"{activation}1", "layer2", f"{activation}2", "layer3"]
    assert isinstance(network[1], kind) and isinstance(network[3], kind)


def test_without_an_activation_the_deeper_network_is_one_layer():
    """The post: without an activation function, the three layers are equivalent to a single one."""
    torch.manual_seed(0)
    model = MNISTClassifier(init="kaiming", activation="identity", batch_norm=True).eval()
    for norm in (model.network.norm1, model.network.norm2):
        torch.nn.init.uniform_(norm.weight, 0.5, 2.0)
        torch.nn.init.uniform_(norm.bias, -1.0, 1.0)
    one_layer = fold_linear_layers(model.network)
    assert isinstance(one_layer, torch.nn.Linear)
    assert (one_layer.in_features, one_layer.out_features) == (784, 10)
    images = torch.rand(32, 784)
    with torch.no_grad():
        assert torch.allclose(one_layer(images), model.network(images), rtol=1e-4, atol=1e-4)


def test_a_network_with_activations_does_not_fold_into_one_layer():
    with pytest.raises(ValueError, match="activation"):
        fold_linear_layers(MNISTClassifier(activation="tanh").network.eval())


def test_no_hidden_layer_is_the_previous_posts_network():
    network = MNISTClassifier(hidden_sizes=[]).network
    assert [name for name, _ in network.named_children()] == ["layer1"]
    assert (network.layer1.in_features, network.layer1.out_features) == (784, 10)
