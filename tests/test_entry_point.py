"""The command's entry points: `python -m lit_mnist` and the `lit-mnist` script that the install makes."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

SUBCOMMANDS = ("fit", "validate", "test", "predict", "lr_find", "export", "serve", "sweep")


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "lit_mnist"], [str(Path(sys.executable).parent / "lit-mnist")]],
    ids=["module", "script"],
)
def test_help_lists_every_subcommand(command):
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    for subcommand in SUBCOMMANDS:
        assert subcommand in result.stdout, subcommand
