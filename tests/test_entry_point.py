"""The command's entry point: the package loads nothing heavy, so that the command can set the garbage collector up
before torch and Lightning load, and leaves it running for the command's own objects."""

import subprocess
import sys

# Runs in a fresh interpreter: pytest's own process has long loaded torch.
PROBE = """
import gc, sys
import lit_mnist
print("probe: torch loaded with the package:", "torch" in sys.modules)
import lit_mnist.__main__ as entry_point
sys.argv = ["lit-mnist", "--help"]
try:
    entry_point.main()
except SystemExit as exit:
    print("probe: exit code:", exit.code)
print("probe: frozen objects:", gc.get_freeze_count())
print("probe: collector enabled:", gc.isenabled())
print("probe: MNISTClassifier:", lit_mnist.MNISTClassifier.__module__)
"""


def test_the_command_freezes_what_its_imports_leave_and_collects_the_rest():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    report = dict(
        line[len("probe: ") :].split(": ", 1) for line in result.stdout.splitlines() if line.startswith("probe: ")
    )
    assert report["torch loaded with the package"] == "False", result.stdout
    assert report["exit code"] == "0"
    # torch, Lightning and matplotlib alone leave some 400,000 objects.
    assert int(report["frozen objects"]) > 100_000
    assert report["collector enabled"] == "True"
    assert report["MNISTClassifier"] == "lit_mnist.model"
