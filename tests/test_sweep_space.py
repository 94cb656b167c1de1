"""The search spaces that ship in configs/ name options fit has, with ranges that read."""

import sys
from pathlib import Path

import pytest

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.sweep.space import read_space
from tests.conftest import REPO


@pytest.mark.parametrize("space", sorted((REPO / "configs").glob("alchemy*.yaml")), ids=lambda path: path.name)
def test_the_shipped_spaces_read_against_fits_options(space: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI claims a run folder where it runs
    monkeypatch.setattr(sys, "argv", ["lit_mnist"])  # the args below are the whole command line
    config = LitMNISTCLI(args=["--trainer.logger", "false"], run=False).config
    columns = read_space(space, config).columns
    assert columns and all(column.choices or column.low < column.high for column in columns)
