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


def test_importing_the_model_and_the_data_changes_no_process_wide_state():
    """A notebook imports lit_mnist.model and lit_mnist.data: warning filters, signal handlers and excepthooks belong
    to the commands that need them (the CLI sets them as it runs), not to an import."""
    script = """
import signal, sys, threading, warnings
import lightning, torch  # what the libraries themselves do on import is theirs
def state():
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    return list(warnings.filters), handlers, sys.excepthook, threading.excepthook
before = state()
import lit_mnist.data, lit_mnist.model
after = state()
assert after[0] == before[0], [f for f in after[0] if f not in before[0]]
assert after[1:] == before[1:]
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
