import math

import pytest
import torch

from lit_mnist.model import MNISTClassifier


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
