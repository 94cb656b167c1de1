"""`python -m lit_mnist` and the `lit-mnist` command: the command line of lit_mnist/cli.py."""

import gc

from lit_mnist.cli import main as command_line


def main() -> None:
    # torch's and Lightning's long-lived objects, out of the garbage collector's reach: its passes stay short.
    gc.freeze()
    command_line()


if __name__ == "__main__":
    main()
