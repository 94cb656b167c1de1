"""The exceptions whose message is shown to the user as is, in one line without a traceback, their exit codes, and
how a failed write is recognised."""

import errno
from pathlib import Path
from typing import Optional


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
    """SIGINT or SIGTERM stopped training after the step under way, whose state ``checkpoint`` holds (None when the
    run keeps no checkpoints). The exit code is what a shell expects of a process ended by that signal."""

    def __init__(self, signal_name: str, step: int, checkpoint: Optional[Path], signal_number: int) -> None:
        super().__init__(f"{signal_name} stopped training at step {step}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = 128 + signal_number


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
