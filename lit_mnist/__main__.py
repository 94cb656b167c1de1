"""`python -m lit_mnist` and the `lit-mnist` command: the command line of lit_mnist/cli.py, `sweep`, and the
playground's spiral (lit_mnist/playground/cli.py) when a config names its data."""

import gc
import sys


def main() -> None:
    if sys.argv[1:2] == ["sweep"]:
        from lit_mnist.run.errors import UserError, needs_extra, one_line

        try:
            with needs_extra("sweep", "sweep"):
                from lit_mnist.sweep.command import main as command_line
        except UserError as error:
            line, exit_code = one_line(error, sys.argv[1:])
            sys.stderr.write(f"{line}\n")
            sys.exit(exit_code)
    else:
        from lit_mnist.cli import main as mnist
        from lit_mnist.playground.cli import main as playground
        from lit_mnist.playground.cli import names_the_spiral

        command_line = playground if names_the_spiral(sys.argv[1:]) else mnist
    # torch's and Lightning's long-lived objects, out of the garbage collector's reach: its passes stay short.
    gc.freeze()
    command_line()


if __name__ == "__main__":
    main()
