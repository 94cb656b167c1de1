"""`python -m lit_mnist` and the `lit-mnist` command: the command line of lit_mnist/cli.py, and `sweep`."""

import gc
import sys


def main() -> None:
    if sys.argv[1:2] == ["sweep"]:
        from lit_mnist.sweep.command import main as command_line
    else:
        from lit_mnist.cli import main as command_line
    # torch's and Lightning's long-lived objects, out of the garbage collector's reach: its passes stay short.
    gc.freeze()
    command_line()


if __name__ == "__main__":
    main()
