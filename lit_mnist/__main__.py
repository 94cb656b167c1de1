"""`python -m lit_mnist` and the `lit-mnist` command: the command line of lit_mnist/cli.py."""

import gc


def main() -> None:
    # torch, Lightning and matplotlib leave some 400,000 objects that live as long as the command, and every full
    # collection of Python's garbage collector walks all of them: on a 2-core machine about 0.8 s while they load,
    # 0.3 s during a run and over 1 s at exit. So the collector waits while they load, then gc.freeze takes them out
    # of its reach for good (at exit too, where the process hands their memory back in one go); the command's own
    # objects are collected as usual. The imports' own garbage, some 13,000 objects, is kept with them (10 MB).
    gc.disable()
    from lit_mnist.cli import main as command_line

    gc.freeze()
    gc.enable()
    command_line()


if __name__ == "__main__":
    main()
