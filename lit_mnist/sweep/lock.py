"""The lock the workers of one machine take in turn on a study's folder."""

from pathlib import Path

from filelock import FileLock


def study_lock(folder: Path) -> FileLock:
    """The study's lock, taken to set up its SQLite store and to write its summary (best.yaml, the study's run, the
    best trial's test). Reentrant within a process: the summary holds it while it draws the study's run."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / ".lock", is_singleton=True)
