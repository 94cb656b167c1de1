"""The speed limit: the post's experiment as a hand-written PyTorch loop, with no framework.

Same network, same initialisation, same batches (a seeded permutation per epoch, as lit_mnist's), validation after
each epoch, a test pass at the end. Used by throughput.py, and runnable on its own as the "whole script" baseline:

    python benchmarks/plain_loop.py --data-dir ../shared/data
"""

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.datasets import MNIST


def load(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    train, test = MNIST(data_dir, train=True), MNIST(data_dir, train=False)
    return {
        "train": (train.data[5000:], train.targets[5000:]),
        "val": (train.data[:5000], train.targets[:5000]),
        "test": (test.data, test.targets),
    }


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 10))
    for layer in network:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=1.0)
            nn.init.zeros_(layer.bias)
    return network


def pixels(images: torch.Tensor) -> torch.Tensor:
    return images.flatten(1).float().div_(255)


@torch.no_grad()
def evaluate(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 100) -> float:
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = network(pixels(images[start : start + batch_size]))
        correct += (logits.argmax(1) == labels[start : start + batch_size]).sum().item()
    return correct / len(labels)


def train(data, steps: int, seed: int = 42, batch_size: int = 100, on_step=None) -> nn.Module:
    """Plain SGD at 1e-4; calls on_step(step) after each step (for timing)."""
    network = build(seed)
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4)
    images, labels = data["train"]
    step, epoch = 0, 0
    while step < steps:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(labels), batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(network(pixels(images[batch])), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
            if step == steps:
                break
        else:
            evaluate(network, *data["val"])
            epoch += 1
    return network


def main(train_steps=train, description: str = __doc__.splitlines()[0]) -> None:
    """The whole script: load the data, ``train_steps(data, steps)``, then the test pass."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    start = time.perf_counter()
    data = load(args.data_dir)
    network = train_steps(data, args.steps)
    print(f"test accuracy {evaluate(network, *data['test']):.4f} after {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
