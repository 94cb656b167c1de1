"""A study: trials that each `fit` the base configuration with the trial's values, in a run folder of their own,
pruned on ``acc/val`` by Optuna, until the study holds the number of trials asked for."""

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import optuna
import sqlalchemy
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from optuna.trial import FrozenTrial, TrialState
from optuna_integration.pytorch_lightning import PyTorchLightningPruningCallback
from tqdm import tqdm

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.run.callbacks import RunSummary
from lit_mnist.run.errors import TrainingDiverged, TrainingStopped, UserError, needs_extra
from lit_mnist.run.folders import runs_folder
from lit_mnist.run.stopping import signals_stop_training
from lit_mnist.sweep.lock import study_lock
from lit_mnist.sweep.space import Space
from lit_mnist.sweep.tensorboard import write_study_run, write_trial_row

# What each trial adds to the base configuration: the curves and the HPARAMS row are what a sweep compares, so the
# rest of TensorBoard's extras, the bar and the checkpoints between validations are left out (none changes training).
TRIAL_OPTIONS = [
    "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false", "--trainer.logger.log_graph=false",
    "--trainer.logger.log_hparams=false", "--tensorboard.histograms=false", "--tensorboard.first_layer_units=0",
    "--tensorboard.embedding_digits=0", "--tensorboard.pr_curves=false", "--tensorboard.config_text=false",
]  # fmt: skip
DONE = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials that count towards --trials; failed ones are retried
HEARTBEAT_SECONDS = 2  # a worker's trials say every 2 s that they are alive; one silent for 10 s is marked failed
NOT_NEEDED = "not needed: the study had its trials"
GIVE_UP_AFTER = 5  # failed trials in a row, and none done: the base configuration, not the values, is at fault


def study_folder(base: LitMNISTCLI, study_name: str) -> Path:
    """``lightning_logs/<study_name>/``: the study's trials, its own run, best.yaml and the default storage."""
    runs = runs_folder(base.config)
    if runs is None:
        raise UserError("sweep keeps its trials through the TensorBoard logger; leave --trainer.logger as it is")
    return runs / study_name


def open_storage(url: Optional[str], folder: Path) -> optuna.storages.RDBStorage:
    """The study's database: SQLite in the study's folder by default, or the PostgreSQL server of ``url``.

    Both keep Optuna's heartbeat, so that a trial whose worker was killed is marked failed by the next worker (Optuna's
    journal file store, which its docs suggest for several processes, has no heartbeat: such a trial would stay
    "running" for good). The workers of one machine create SQLite's tables in turn, under the study's lock."""
    if url is None:
        with study_lock(folder):
            return _open_storage(f"sqlite:///{folder / 'study.db'}")
    return _open_storage(url)


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UserError(f"--storage {url} is not a database URL; give postgresql://USER@HOST:PORT/DATABASE") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"--storage {url}: sweep keeps studies in PostgreSQL (postgresql://...) or SQLite")
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, which the project installs
    connect = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {"timeout": 30}
    for attempt in range(3):
        try:
            with needs_extra("sweep --storage postgresql://...", "postgres"):  # the driver is an extra of its own
                return optuna.storages.RDBStorage(
                    parsed.render_as_string(hide_password=False),
                    engine_kwargs={"connect_args": connect},
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=5 * HEARTBEAT_SECONDS,
                )
        except sqlalchemy.exc.IntegrityError:  # another worker created Optuna's tables in a new database just now
            time.sleep(1 + attempt)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as error:
            reason = " ".join(str(error.orig or error).split()).split(" (Background on")[0][:200]
            if parsed.get_backend_name() == "sqlite":
                raise UserError(f"cannot open the study's database {parsed.database} ({reason}); check that its "
                                "folder is writable, or give another --study_name") from None  # fmt: skip
            raise UserError(f"--storage: cannot reach the database ({reason}); check the server and the URL") from None
    raise UserError("--storage: Optuna could not set up its tables in the database; run the command again")


def pruner() -> optuna.pruners.BasePruner:
    """Every trial gets one validation (an epoch); a third go on to three, a ninth to nine, and so on.

    Optuna keeps no pruner with a study: every worker, and every continuation, is given this one."""
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


def open_study(storage: optuna.storages.RDBStorage, name: str, space: Space) -> optuna.Study:
    """The study of that name, created if new; refused if it exists with another space."""
    if name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner())
        # None: the worker that created it a moment ago has not said its space yet.
        if study.user_attrs.get("space", space.text) != space.text:
            raise UserError(f"--study_name {name} exists with another --space; give a new --study_name")
        study.set_user_attr("space", space.text)
        return study
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,  # another worker may create it at the same moment
        pruner=pruner(),
    )
    study.set_user_attr("space", space.text)
    return study


def described(params: dict) -> str:
    """``depth 2, width 512, learning_rate 0.0013``"""
    return ", ".join(
        f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in params.items()
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a trial's training, stopping the sweep as Ctrl-C does."""


def raise_terminated(number: int, frame: object) -> None:
    """The sweep's SIGTERM handler (a trial's training has its own, see ``SignalStop``)."""
    raise Terminated()


class NotNeeded(Exception):
    """A trial started after the study had its trials (two workers started their last ones at the same moment)."""


class GiveUpAfterFailures:
    """An Optuna callback that stops the sweep in one line after GIVE_UP_AFTER failed trials in a row and none done:
    the base configuration, not the values, is then at fault."""

    def __init__(self, done: Callable[[], int]) -> None:
        self.done, self.failures = done, 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("failure") == NOT_NEEDED:
            return
        self.failures = self.failures + 1 if trial.state == TrialState.FAIL else 0
        if self.failures >= GIVE_UP_AFTER and not self.done():
            reason = trial.user_attrs.get("failure", "see the trial's run folder")
            raise UserError(f"the last {self.failures} trials all failed ({reason[:300]}); check the base "
                            "configuration and the space")  # fmt: skip


class Sweep:
    """One worker of a study: runs trials one after another in this process until the study has ``trials``."""

    def __init__(self, base: LitMNISTCLI, fit_args: list[str], space: Space, study: optuna.Study, trials: int,
                 folder: Path) -> None:  # fmt: skip
        self.base, self.fit_args, self.space, self.study = base, fit_args, space, study
        self.trials, self.folder = trials, folder
        self.runs = runs_folder(base.config)
        self.stopped_trial: Optional[int] = None  # the trial that Ctrl-C or SIGTERM stopped, if one was running

    def done(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=DONE))

    def run(self, progress_bar: bool = True) -> None:
        """Trials until the study has its number, with a progress bar over them unless ``progress_bar`` is false.

        Optuna's ``optimize`` runs them, stopped by its ``MaxTrialsCallback`` once the trials done and those under way
        in any worker make the number, and failing the trials of dead workers by their heartbeat. Then this worker
        waits for the others' last trials, and takes up the work again if one of them died.
        """
        bar = tqdm(total=self.trials, initial=min(self.done(), self.trials), desc="Trials", unit="trial",
                   disable=not progress_bar)  # fmt: skip
        enough = optuna.study.MaxTrialsCallback(self.trials, states=(*DONE, TrialState.RUNNING))
        callbacks = [enough, GiveUpAfterFailures(self.done), lambda study, trial: bar.update(self.done() - bar.n)]
        try:
            while self.done() < self.trials:
                if self.done() + self._running() < self.trials:
                    self.study.optimize(self.objective, catch=(TrainingDiverged, NotNeeded), callbacks=callbacks)
                else:  # the last trials are under way in other workers
                    time.sleep(HEARTBEAT_SECONDS)
                    optuna.storages.fail_stale_trials(self.study)
        finally:
            bar.n = min(self.done(), self.trials)
            bar.close()

    def _running(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def trial_args(self, overrides: list[str], number: int) -> list[str]:
        logger = [f"--trainer.logger.save_dir={self.runs.parent}", f"--trainer.logger.name={self.runs.name}"]
        version = f"--trainer.logger.version={self.folder.name}/trial_{number:04d}"
        return [*self.fit_args, *overrides, *TRIAL_OPTIONS, *logger, version]

    def objective(self, trial: optuna.Trial) -> float:
        try:
            return self._trial(trial)
        except (KeyboardInterrupt, TrainingStopped, SIGTERMException) as error:  # Optuna records the trial as failed
            self.stopped_trial = trial.number
            if "failure" not in trial.user_attrs:
                trial.set_user_attr("failure", f"stopped: {type(error).__name__} {error}".strip())
            if isinstance(error, SIGTERMException):  # Lightning's own SIGTERM handling, outside the training steps
                raise Terminated() from error
            raise

    def _trial(self, trial: optuna.Trial) -> float:
        # Two workers can start their last trials at the same moment: the one numbered past the study's total ends
        # at once, as a failed trial that asked for nothing.
        ahead = [
            t for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and t.state != TrialState.FAIL
        ]
        if len(ahead) >= self.trials:
            trial.set_user_attr("failure", NOT_NEEDED)
            raise NotNeeded()
        overrides = self.space.suggest(trial)
        trial.set_user_attr("options", overrides)
        folder = self.folder / f"trial_{trial.number:04d}"
        start = time.monotonic()
        cli = LitMNISTCLI(args=self.trial_args(overrides, trial.number), run=False)
        # The trial's line says what it trains; the run summary of every fit would be a second one.
        cli.trainer.callbacks = [callback for callback in cli.trainer.callbacks if not isinstance(callback, RunSummary)]
        cli.trainer.callbacks.append(PyTorchLightningPruningCallback(trial, monitor="acc/val"))
        settings = described(trial.params)
        try:
            cli.fit(model=cli.model, datamodule=cli.datamodule)
        except optuna.TrialPruned:
            trial.set_user_attr("pruned_at_step", cli.trainer.global_step)
            self._finish(trial, folder, "pruned", f"pruned at step {cli.trainer.global_step}", settings, start)
            raise
        except TrainingDiverged as error:
            trial.set_user_attr("failure", str(error))
            self._finish(trial, folder, "failed", "failed: training diverged", settings, start)
            raise
        if "acc/val" not in cli.trainer.callback_metrics:
            raise UserError("the trial ended without a validation: sweep chooses by acc/val, so validate (at least "
                            "at the end; see --trainer.check_val_every_n_epoch)")  # fmt: skip
        value = float(cli.trainer.callback_metrics["acc/val"])
        trial.set_user_attr("loss/val", float(cli.trainer.callback_metrics["loss/val"]))
        cli.trainer.save_checkpoint(folder / "final.ckpt", weights_only=True)  # only the best one is tested
        self._finish(trial, folder, "finished", f"acc/val {value:.4f}", settings, start)
        return value

    def _finish(self, trial: optuna.Trial, folder: Path, state: str, result: str, settings: str, start: float) -> None:
        write_trial_row(folder, trial, state)
        tqdm.write(f"trial {trial.number}: {settings}: {result} ({time.monotonic() - start:.0f} s)")

    def summary(self) -> Optional[str]:
        """Test the best trial, write best.yaml and the study's own run, and say what won. The workers of one machine
        that finish together take turns: the study's run is drawn whole, and the best trial tested once."""
        with study_lock(self.folder):
            return self._summary()

    def _summary(self) -> Optional[str]:
        finished = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        write_study_run(self.folder / "study", self.study, self.space)
        if not finished:
            return None
        best = max(finished, key=lambda trial: trial.value)
        options = best.user_attrs["options"]
        best_yaml = self.folder / "best.yaml"
        parser = self.base.parser
        config = parser.parse_args([*self.fit_args, *options])
        partial = best_yaml.with_name(".best.yaml.partial")  # one worker at a time writes it, under the study's lock
        partial.write_text(parser.dump(config, skip_none=False))
        partial.replace(best_yaml)
        checkpoint = self.folder / f"trial_{best.number:04d}" / "final.ckpt"
        key = f"acc/test of trial {best.number}"
        if key not in self.study.user_attrs and checkpoint.is_file():  # on the machine that ran it
            cli = LitMNISTCLI(args=self.trial_args(options, best.number), run=False)
            # The trial's config.yaml is written already: the test adds its figures to the trial's run, no more.
            cli.trainer.callbacks = [c for c in cli.trainer.callbacks if not isinstance(c, SaveConfigCallback)]
            with signals_stop_training(cli.trainer):  # Lightning's own Ctrl-C handling would exit with no line
                test = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint), verbose=False)
            self.study.set_user_attr(key, test[0]["acc/test"])
        tested = self.study.user_attrs.get(key)
        tested = f"acc/test {tested:.4f}" if tested is not None else "acc/test on the machine that ran it"
        settings = described(best.params)
        reproduce = shlex.join(["python", "-m", "lit_mnist", "fit", "--config", str(best_yaml)])
        return (
            f"Best of {len(finished)} finished trials: trial {best.number} ({settings}): acc/val {best.value:.4f}, "
            f"{tested}. Its configuration: {best_yaml}; run it again with: {reproduce}"
        )
