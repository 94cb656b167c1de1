"""``python -m lit_mnist sweep [fit's options] --space FILE --trials N --study_name NAME [--storage URL]``."""

import argparse
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Optional

import optuna
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.run.errors import ONE_LINE_ERRORS, TrainingStopped, UserError, one_line, quiet_write_failures
from lit_mnist.sweep.space import read_space
from lit_mnist.sweep.study import Sweep, open_storage, open_study, raise_terminated, study_folder

DESCRIPTION = """Search the post's "alchemy" of hyperparameters with Optuna: each trial is a fit of the base
configuration (fit's options and --config files, by default the post's experiment) with the trial's values, in
lightning_logs/STUDY_NAME/trial_N/, pruned on acc/val after each epoch. The best trial by acc/val is tested at the
end and written to lightning_logs/STUDY_NAME/best.yaml. The same command again continues the study; the same command
on several machines, with --storage postgresql://..., shares it out. Every option of fit applies: see
'python -m lit_mnist fit --help'."""


def positive(text: str) -> int:
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return int(text)


def study_name(text: str) -> str:
    if not re.fullmatch(r"[\w.-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '-', '_' and '.' (it names a folder)")
    return text


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        sys.stderr.write(f"error: {message} (see 'python -m lit_mnist sweep --help')\n")
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    options = OneLineParser(prog="python -m lit_mnist sweep", description=DESCRIPTION)
    options.add_argument("--space", type=Path, required=True,
                         help="the search space: a YAML file of fit's option names with their ranges, e.g. "
                         "configs/alchemy.yaml")  # fmt: skip
    every = "trials the study holds in the end, finished or pruned, shared by every worker"
    options.add_argument("--trials", type=positive, required=True, help=every)
    options.add_argument("--study_name", type=study_name, required=True, help="the study, and its folder's name")
    options.add_argument(
        "--workers",
        type=positive,
        default=1,
        help="worker processes on this machine, each with its share of torch's threads (default: 1)",
    )
    options.add_argument("--helper", action="store_true", help=argparse.SUPPRESS)  # one of the others --workers starts
    options.add_argument("--storage", default=None,
                         help="postgresql://USER@HOST:PORT/DATABASE for several machines (default: SQLite in the "
                         "study's folder)")  # fmt: skip
    return options


def main(args: Optional[list[str]] = None) -> None:
    command_line = sys.argv[2:] if args is None else list(args)
    threading.excepthook = quiet_write_failures
    sweep_options, fit_args = parser().parse_known_args(command_line)
    resume = shlex.join(["python", "-m", "lit_mnist", "sweep", *(word for word in command_line if word != "--helper")])
    sys.argv = sys.argv[:1]  # LightningCLI warns when it gets args besides a command line: the args are all of it
    sweep, testing, helpers = None, False, []
    previous = signal.signal(signal.SIGTERM, raise_terminated)  # SIGTERM stops the sweep as Ctrl-C does
    # Each trial gets a line of its own (Optuna's would add a traceback for each failed one), and the heartbeat that
    # finds a killed worker's trials is an "experimental" feature of Optuna's: nothing a user can act on.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name in ("lightning.pytorch", "lightning.fabric"):  # until the base configuration says otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        # The base configuration, checked whole before anything is written; its run folder is the study's own.
        base = LitMNISTCLI(args=[*fit_args, f"--trainer.logger.version={sweep_options.study_name}/study"], run=False)
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(base.config.log_level)
        if base.config.data.val_size == 0:
            raise UserError("sweep chooses trials by acc/val, and --data.val_size 0 holds no digits back to validate "
                            "on: leave it at its default, 5000")  # fmt: skip
        space = read_space(sweep_options.space, base.config)
        folder = study_folder(base, sweep_options.study_name)
        storage = open_storage(sweep_options.storage, folder)
        study = open_study(storage, sweep_options.study_name, space)
        sweep = Sweep(base, fit_args, space, study, sweep_options.trials, folder)
        if sweep_options.helper:  # the worker that started it says what the study holds, and what won
            sweep.run(progress_bar=False)
            return
        print(f"Study {sweep_options.study_name}: {sweep.done()} of {sweep_options.trials} trials done; "
              f"its folder: {folder}", flush=True)  # fmt: skip
        helpers = start_helpers(command_line, sweep_options.workers)
        sweep.run()
        for helper in helpers:
            if helper.wait() != 0:
                raise UserError(f"a worker process stopped with exit status {helper.returncode} (its line is above)")
        testing = True
        line = sweep.summary()
        if line:
            print(line)
        print(f"See the trials in TensorBoard: tensorboard --logdir {folder}")
    except (TrainingStopped, KeyboardInterrupt, SIGTERMException) as stop:
        done = f"{sweep.done()} of {sweep_options.trials} trials are done" if sweep is not None else ""
        if sweep is None:
            where = " before its first trial"
        elif testing:
            where = f" as it tested the best trial; {done}"
        elif sweep.stopped_trial is None:
            where = f" between two trials; {done}"
        else:
            where = f", trial {sweep.stopped_trial} recorded as failed; {done}"
        if isinstance(stop, TrainingStopped):
            name, exit_code = stop.signal_name, stop.exit_code
        else:
            number = signal.SIGINT if type(stop) is KeyboardInterrupt else signal.SIGTERM
            name, exit_code = number.name, 128 + number
        sys.stderr.write(f"{name} stopped the sweep{where}. Continue with: {resume}\n")
        sys.exit(exit_code)
    except ONE_LINE_ERRORS as error:
        line, exit_code = one_line(error, command_line)
        sys.stderr.write(f"{line}\n")
        sys.exit(exit_code)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_helpers(helpers)


def start_helpers(command_line: list[str], workers: int) -> list[subprocess.Popen]:
    """The other ``workers - 1`` workers of ``--workers``: the same command, each of the N processes with 1/N of
    torch's threads. N processes that each took every core would run many times slower than one, not N times."""
    if workers == 1:
        return []
    threads = max(1, torch.get_num_threads() // workers)
    torch.set_num_threads(threads)
    command = [sys.executable, "-m", "lit_mnist", "sweep", *command_line, "--helper"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return [subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL) for _ in range(workers - 1)]


def stop_helpers(helpers: list[subprocess.Popen]) -> None:
    """SIGTERM to the workers still running (a Ctrl-C reached them already): each records its trial as stopped."""
    for helper in helpers:
        if helper.poll() is None:
            helper.terminate()
    for helper in helpers:
        try:
            helper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            helper.kill()
