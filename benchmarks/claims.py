"""The post's claims about its network, measured: the post's experiment (`configs/seed.yaml`) with one option changed
at a time, each over the same seeds, and the test accuracy of each run.

    python benchmarks/claims.py --data-dir data --seeds 1 2 3

Each run is `python -m lit_mnist fit --config configs/seed.yaml --seed_everything S` plus the claim's options, as a
user runs it (in this process, in a temporary folder, progress bar off). The claims alternate within each seed, so
that a slow spell of the machine falls on all of them. Run it alone.
"""

import argparse
import statistics
import sys
import unittest.mock
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import in_temporary_folder  # noqa: E402

from lit_mnist.cli import LitMNISTCLI  # noqa: E402

# The claim, and the options that check it against the post's experiment.
CLAIMS = {
    "the post's network (ReLU, learning rate 0.0001)": [],
    "sigmoid": ["--model.activation", "sigmoid"],
    "tanh": ["--model.activation", "tanh"],
    "no activation (one linear map)": ["--model.activation", "identity"],
    "no hidden layer (the previous post's)": ["--model.hidden_sizes", "[]"],
    "learning rate 0.01": ["--model.learning_rate", "0.01"],
}


def run(options: list[str], seed: int, data_dir: str) -> float:
    """The test accuracy of one run, or NaN when its training diverged."""
    with in_temporary_folder(), unittest.mock.patch("sys.argv", [sys.argv[0]]):
        cli = LitMNISTCLI(
            args=["--config", str(REPO / "configs" / "seed.yaml"), "--data.data_dir", data_dir,
                  "--seed_everything", str(seed), "--trainer.enable_progress_bar", "false", *options],
            run=False,
        )  # fmt: skip
        try:
            cli.trainer.fit(cli.model, cli.datamodule)
        except Exception as error:  # a diverged run ends in one line: that is its figure
            print(f"    {type(error).__name__}: {error}", flush=True)
            return float("nan")
        (results,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return results["acc/test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    args = parser.parse_args()
    results: dict[str, list[float]] = {claim: [] for claim in CLAIMS}
    for seed in args.seeds:
        for claim, options in CLAIMS.items():
            results[claim].append(run(options, seed, str(Path(args.data_dir).resolve())))
            print(f"seed {seed}: {claim}: test accuracy {results[claim][-1]:.2%}", flush=True)
    print(f"\n| claim | seeds {', '.join(map(str, args.seeds))} | mean |\n| --- | --- | --- |")
    for claim, accuracies in results.items():
        each = " / ".join(f"{accuracy:.2%}" for accuracy in accuracies)
        print(f"| {claim} | {each} | {statistics.mean(accuracies):.2%} |")


if __name__ == "__main__":
    main()
