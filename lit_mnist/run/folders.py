"""Which run folder a command writes to: a new ``version_N`` claimed so that no run started at the same moment can
take it, ``--ckpt_path last``, and which checkpoint continues which run."""

import re
import warnings
from pathlib import Path
from typing import Any, Optional

import yaml
from lightning.pytorch.utilities import rank_zero_only

from lit_mnist.run.errors import UserError

# The key that holds the steps a learning-rate schedule was planned for, in the state of each of torch's schedulers.
PLANNED_STEPS = {"total_steps": "one-cycle", "T_max": "cosine"}


def runs_folder(config: Any) -> Optional[Path]:
    """Where the configured TensorBoard logger keeps its version_N folders (None for another logger or none)."""
    init_args = getattr(config.trainer.logger, "init_args", None)
    if init_args is None or "save_dir" not in init_args:
        return None
    return Path(init_args.save_dir) / (init_args.name or "")


def claim_run_folder(runs: Path) -> int:
    """Create the next ``version_N`` folder in ``runs`` and return N.

    A number taken from a listing of the folders, as Lightning's logger takes it, is only a proposal: two runs started
    together would both get it. Creating the folder is atomic, so a run that finds it taken moves on to the next one.
    """
    numbers = [version_number(folder) for folder in runs.glob("version_*")]
    version = max(numbers, default=-1) + 1
    try:
        runs.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                (runs / f"version_{version}").mkdir()
                return version
            except FileExistsError:
                version += 1
    except OSError as error:
        raise UserError(
            f"cannot create a run folder in {runs} ({error.strerror}); choose a writable folder with "
            "--trainer.logger.save_dir"
        ) from None


def claim_new_run(config: Any) -> list[Path]:
    """Give a new run of the TensorBoard logger its version_N folder now, created so that no run started at the same
    time can take it, and set it as the logger's version; returns the folders created, innermost last."""
    runs = runs_folder(config)
    if runs is None or config.trainer.logger.init_args.get("version") is not None:
        return []
    created = [folder for folder in (*reversed(runs.parents), runs) if not folder.exists()]
    config.trainer.logger.init_args.version = claim_run_folder(runs)
    return [*created, runs / f"version_{config.trainer.logger.init_args.version}"]


def version_number(folder: Path) -> int:
    suffix = folder.name.removeprefix("version_")
    return int(suffix) if suffix.isdigit() else -1


def run_settings(config_yaml: str, subcommand: Optional[str] = None) -> dict[str, Any]:
    """What makes two runs the same run: their model, data and seed settings."""
    config = yaml.safe_load(config_yaml) or {}
    if subcommand:
        config = config.get(subcommand, {})
    return {key: config.get(key) for key in ("model", "data", "seed_everything")}


def latest_run_checkpoint(runs: Optional[Path], settings: dict[str, Any]) -> Path:
    """The last.ckpt of the newest run in ``runs`` made with these model, data and seed settings."""
    if runs is None:
        raise UserError("--ckpt_path last finds runs through the TensorBoard logger's folders; give the path instead")
    for folder in sorted(runs.glob("version_*"), key=version_number, reverse=True):
        last, saved = folder / "checkpoints" / "last.ckpt", folder / "config.yaml"
        if last.is_file() and saved.is_file() and run_settings(saved.read_text()) == settings:
            return last
    raise UserError(
        f"--ckpt_path last: no run in {runs}/ with these model and data settings has a checkpoints/last.ckpt; "
        "start the run without --ckpt_path, or give the checkpoint's path"
    )


def continued_run(config: Any, ckpt_path: Path, checkpoint: dict[str, Any]) -> Optional[Path]:
    """The run folder that ``ckpt_path`` continues, set as the logger's version (None: a new run starts from it).

    A run's own last.ckpt continues that run in its folder; a best checkpoint, or one from elsewhere, starts a new
    run from its weights. Refuses, in one line, the continuations that would fail mid-run.
    """
    step = checkpoint["global_step"]
    max_steps = config.trainer.get("max_steps")
    if max_steps is not None and 0 <= max_steps <= step:
        raise UserError(
            f"nothing to train: {ckpt_path} is at step {step} and --trainer.max_steps is {max_steps}; "
            f"give a --trainer.max_steps above {step}"
        )
    # A schedule comes back with the checkpoint, planned for the steps of the run that made it: torch refuses to
    # step a one-cycle schedule further (mid-run, with a traceback), and a cosine one would climb back to its peak.
    for scheduler in checkpoint.get("lr_schedulers") or []:
        for key, name in PLANNED_STEPS.items():
            planned = scheduler.get(key)
            if isinstance(planned, int) and max_steps is not None and max_steps > planned:
                raise UserError(
                    f"--trainer.max_steps {max_steps}: {ckpt_path}'s {name} learning-rate schedule was planned for "
                    f"{planned} steps and cannot go past them; continue to at most {planned} steps, or train a new "
                    "run with more steps from the start"
                )
    run, runs = ckpt_path.resolve().parent.parent, runs_folder(config)
    own_last = ckpt_path.name == "last.ckpt" and ckpt_path.resolve().parent.name == "checkpoints"
    match = re.fullmatch(r"version_(\d+)", run.name)
    if not own_last or not match or runs is None or run.parent != runs.resolve():
        return None
    config.trainer.logger.init_args.version = int(match.group(1))
    # Drop the events logged after this checkpoint by the interrupted process, so TensorBoard shows one curve.
    config.trainer.logger.init_args.purge_step = step
    # Lightning warns that the checkpoint folder is not empty: here it is the run's own, on purpose.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    if rank_zero_only.rank == 0:
        print(f"Continuing {runs / run.name} from step {step}")
    return runs / run.name
