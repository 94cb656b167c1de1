"""The search spaces that ship in configs/ name options fit has, and fit takes both ends of every range."""

import sys
from pathlib import Path

import optuna
import pytest

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.sweep.space import read_space
from tests.conftest import REPO


@pytest.mark.parametrize("space", sorted((REPO / "configs").glob("alchemy*.yaml")), ids=lambda path: path.name)
def test_the_shipped_spaces_read_against_fits_options(space: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI claims a run folder where it runs
    monkeypatch.setattr(sys, "argv", ["lit_mnist"])  # the args below are the whole command line
    fit = ["--trainer.logger", "false"]
    searched = read_space(space, LitMNISTCLI(args=fit, run=False).config)
    # read_space checks the names and the ranges' shape; fit's own types check the values a trial can draw.
    for end in (0, -1):
        ends = {column.name: (column.choices or (column.low, column.high))[end] for column in searched.columns}
        LitMNISTCLI(args=[*fit, *searched.suggest(optuna.trial.FixedTrial(ends))], run=False)
