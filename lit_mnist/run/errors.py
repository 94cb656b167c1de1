"""The exceptions whose message is shown to the user as is, in one line without a traceback, their exit codes, how a
failed write is recognised, and the one place that turns an exception into that line."""

import contextlib
import errno
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException


class UserError(Exception):
    """Something the user can fix: the message says what is wrong and how to fix it, in one line."""

    exit_code = 2  # a usage error, as argparse exits


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""

    exit_code = 3


class WriteFailed(UserError):
    """A file of the run could not be written (disk full, file too large, permission lost)."""

    exit_code = 4


class ServerFailed(UserError):
    """The server stopped because one of its processes died."""

    exit_code = 1


class TrainingStopped(UserError):
    """SIGINT or SIGTERM stopped training after the step under way, or before the first, whose state ``checkpoint``
    holds (None when nothing was saved). The exit code is what a shell expects of a process ended by that signal."""

    def __init__(self, signal_name: str, step: int, checkpoint: Optional[Path], signal_number: int) -> None:
        super().__init__(f"{signal_name} stopped training at step {step}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = 128 + signal_number

    def resume_advice(self, command_line: list[str]) -> str:
        """Where the run stopped, and the command that resumes it: the same one, with the checkpoint as --ckpt_path."""
        if self.checkpoint is None and self.step == 0:
            return f"{self.signal_name} stopped the run before its first step: nothing was saved"
        if self.checkpoint is None:
            return f"{self}; the run keeps no checkpoints, so nothing was saved"
        kept, skip = [], False
        for argument in command_line:
            if skip:
                skip = False
            elif argument == "--ckpt_path":
                skip = True
            elif not argument.startswith("--ckpt_path="):
                kept.append(argument)
        resume = shlex.join(["python", "-m", "lit_mnist", *kept, "--ckpt_path", str(self.checkpoint)])
        return f"{self}; {self.checkpoint} holds it. Resume with: {resume}"


# The package's optional parts (pyproject.toml's extras): what each is called, and the modules that need it.
EXTRAS = {
    "serve": ("serving", {"litserve"}),
    "export": ("ONNX export", {"onnx", "onnxscript"}),
    "sweep": ("sweep", {"optuna", "optuna_integration", "sqlalchemy", "filelock"}),
    "postgres": ("PostgreSQL", {"psycopg"}),
}


@contextlib.contextmanager
def needs_extra(command: str, extra: str) -> Iterator[None]:
    """Turn the import of a missing module of ``extra`` into one line that gives the pip command to install it."""
    try:
        yield
    except ImportError as error:
        name, modules = EXTRAS[extra]
        cause = error.__cause__ or error  # Optuna reports a missing database driver as an ImportError of its own
        if not isinstance(cause, ModuleNotFoundError) or (cause.name or "").split(".")[0] not in modules:
            raise
        raise UserError(f"{command} needs the {name} extra: pip install 'lit-mnist[{extra}]'") from None


# What a file that cannot be written fails with: disk full, over a file-size limit or quota, permission lost,
# a file system gone read-only or bad.
WRITE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def os_error_of(error: BaseException) -> Optional[OSError]:
    """The OSError behind an exception: torch.save reports a failed write as a RuntimeError raised while handling it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return None


def write_failure(error: BaseException, run_folder: Optional[Path]) -> Optional[WriteFailed]:
    """The one-line error for an exception that is a failed write of one of the run's files, naming the file.

    The checkpoint and config.yaml writers name their files; an OSError without a file name is TensorBoard's
    writer, whose thread reports the error without one, so the line names the run's newest event file."""
    cause = os_error_of(error)
    if cause is None or cause.errno not in WRITE_ERRORS:
        return None
    name = cause.filename
    if name is None and run_folder is not None:
        events = sorted(run_folder.glob("events.out.tfevents.*"), key=lambda path: path.stat().st_mtime)
        name = events[-1] if events else None
    return WriteFailed(f"cannot write {name or 'a file of the run'}: {cause.strerror}")


def quiet_write_failures(hook_args: threading.ExceptHookArgs) -> None:
    """A threading.excepthook: TensorBoard writes event files on a thread of its own, where a failed write would print
    a traceback; the writer raises the same error again in the main thread at its next write, where it gets its line."""
    error = hook_args.exc_value
    if not (isinstance(error, OSError) and error.errno in WRITE_ERRORS):
        sys.__excepthook__(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback)


# What the user sees for each exception that is not a bug: its line (without "error: ") and the exit status.
ONE_LINE_ERRORS = (UserError, MisconfigurationException, KeyboardInterrupt, SIGTERMException)


def one_line(error: BaseException, command_line: list[str]) -> tuple[str, int]:
    """The line that says what stopped the command, and its exit status, for each of ONE_LINE_ERRORS."""
    if isinstance(error, TrainingStopped):
        return error.resume_advice(command_line), error.exit_code
    if isinstance(error, UserError):
        return f"error: {error}", error.exit_code
    if isinstance(error, MisconfigurationException):  # Lightning's checks of Trainer options name option and values
        return f"error: {' '.join(str(error).split())}", 2
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C while the command line is read and the classes built
        return "error: interrupted", 128 + signal.SIGINT
    # Lightning's SIGTERM outside training (the test pass): a SystemExit that would otherwise exit with 0.
    return "error: stopped by SIGTERM", 128 + signal.SIGTERM
