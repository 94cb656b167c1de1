"""`python -m lit_mnist sweep`: Optuna studies of fit, on the embedded store and on a real PostgreSQL server."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.conftest import REPO, finish_all, first_run, free_port, run_in_process, run_in_subprocess, write_tiny_mnist

pytestmark = pytest.mark.slow  # sweeps run the CLI in subprocesses; a PostgreSQL server

# Tiny runs: 3 epochs of 5 batches, so that the pruner has three validations to go by.
TINY_FIT = ["--data.val_size", "100", "--trainer.max_steps", "15", "--trainer.log_every_n_steps", "5"]
SPACE = """model.hidden_sizes: {depth: {low: 1, high: 2}, width: {low: 8, high: 64, log: true}}
model.learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}
"""
TRIAL_LINE = re.compile(r"^trial (\d+): depth \d, width \d+, learning_rate \S+: (acc/val \d\.\d{4}|pruned at step \d+)")


def sweep_command(data: Path, space: Path, *args: str) -> list[str]:
    return ["sweep", "--data.data_dir", str(data), *TINY_FIT, "--model.init", "kaiming", "--space", str(space), *args]


def in_a_process(command: list[str]) -> list[str]:
    """The sweep as a process of its own: for a signal, a SIGKILL, or two workers at once."""
    return [sys.executable, "-m", "lit_mnist", *command]


def sweep(work: Path, *args: str) -> subprocess.CompletedProcess:
    return run_in_process(*args, cwd=work)


def study_of(work: Path, name: str, storage: str | None = None) -> optuna.Study:
    storage = storage or f"sqlite:///{work / 'lightning_logs' / name / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage)


def done(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(states=states)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    write_tiny_mnist(tmp_path / "data")
    (tmp_path / "space.yaml").write_text(SPACE)
    return tmp_path


def test_a_sweep_on_the_embedded_store_runs_its_trials_and_continues(work):
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "5", "--study_name", "s"))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if TRIAL_LINE.match(line)]
    assert sorted(int(TRIAL_LINE.match(line)[1]) for line in lines) == [0, 1, 2, 3, 4]
    assert "Best of" in result.stdout and "acc/test" in result.stdout
    study = study_of(work, "s")
    assert len(done(study)) == 5
    folder = work / "lightning_logs" / "s"
    assert sorted(path.name for path in folder.glob("trial_*")) == [f"trial_{n:04d}" for n in range(5)]
    # Nothing else was written: no version_N folder, no data folder.
    assert sorted(path.name for path in work.iterdir()) == ["data", "lightning_logs", "space.yaml"]
    assert sorted(path.name for path in (work / "lightning_logs").iterdir()) == ["s"]

    # The same command again continues the study: it has its trials, so it only says so.
    again = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "5", "--study_name", "s"))
    assert again.returncode == 0, again.stderr
    assert "5 of 5 trials done" in again.stdout and not TRIAL_LINE.search(again.stdout)
    assert len(study_of(work, "s").trials) == 5


def test_best_yaml_reproduces_the_best_trial_bit_for_bit(work):
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s"))
    assert result.returncode == 0, result.stderr
    study = study_of(work, "s")
    best = study.best_trial
    config = yaml.safe_load((work / "lightning_logs" / "s" / "best.yaml").read_text())
    assert config["model"]["hidden_sizes"] == [best.params["width"]] * best.params["depth"]
    assert config["model"]["learning_rate"] == best.params["learning_rate"]
    fit = subprocess.run([sys.executable, "-m", "lit_mnist", "fit", "--config", "lightning_logs/s/best.yaml",
                          "--trainer.enable_progress_bar", "false"], cwd=work, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    events = EventAccumulator(str(first_run(work)))
    events.Reload()
    assert events.Scalars("acc/val")[-1].value == best.value  # exactly: the same run


def test_each_trial_has_an_hparams_row_of_exactly_its_searched_values(work):
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s"))
    assert result.returncode == 0, result.stderr
    study = study_of(work, "s")
    for trial in study.trials:
        events = EventAccumulator(str(work / "lightning_logs" / "s" / f"trial_{trial.number:04d}"))
        events.Reload()
        content = events.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        row = start.session_start_info.hparams
        assert set(row) == {"depth", "width", "learning_rate", "state"}
        assert row["learning_rate"].number_value == pytest.approx(trial.params["learning_rate"])
        assert row["state"].string_value == {"COMPLETE": "finished", "PRUNED": "pruned"}[trial.state.name]
        assert "acc/val" in events.Tags()["scalars"]
    study_run = EventAccumulator(str(work / "lightning_logs" / "s" / "study"))
    study_run.Reload()
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        study_run.PluginTagToContent("hparams")["_hparams_/experiment"]
    ).experiment
    domains = {info.name: (info.domain_interval.min_value, info.domain_interval.max_value)
               for info in experiment.hparam_infos if info.HasField("domain_interval")}  # fmt: skip
    assert domains == {"depth": (1, 2), "width": (8, 64), "learning_rate": (1e-4, 1e-1)}
    assert "study/history" in study_run.Tags()["images"] and "trials" in str(study_run.Tags())


def test_a_diverging_trial_is_recorded_as_failed_with_its_reason_and_the_sweep_goes_on(work):
    (work / "space.yaml").write_text("model.learning_rate: {choices: [1.0e+30]}\n")
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "2", "--study_name", "s"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: the last 5 trials all failed (training diverged")
    assert "Traceback" not in result.stderr
    study = study_of(work, "s")
    assert [trial.state.name for trial in study.trials] == ["FAIL"] * 5
    assert all("training diverged" in trial.user_attrs["failure"] for trial in study.trials)


def test_a_trials_figures_do_not_depend_on_the_trials_before_it(work):
    """The same values as a study's first trial and as its second, after another: the same acc/val."""
    (work / "one.yaml").write_text("model.learning_rate: {choices: [0.01]}\n")
    (work / "two.yaml").write_text("model.learning_rate: {choices: [0.05, 0.01]}\n")
    first = sweep(work, *sweep_command(work / "data", work / "one.yaml", "--trials", "1", "--study_name", "one"))
    assert first.returncode == 0, first.stderr
    study = optuna.create_study(study_name="two", storage=f"sqlite:///{work / 'two.db'}", direction="maximize")
    study.set_user_attr("space", (work / "two.yaml").read_text())
    study.enqueue_trial({"learning_rate": 0.05})
    study.enqueue_trial({"learning_rate": 0.01})
    second = sweep(work, *sweep_command(work / "data", work / "two.yaml", "--trials", "2", "--study_name", "two",
                                        "--storage", f"sqlite:///{work / 'two.db'}"))  # fmt: skip
    assert second.returncode == 0, second.stderr
    values = {
        trial.params["learning_rate"]: trial.intermediate_values
        for trial in study_of(work, "two", f"sqlite:///{work / 'two.db'}").trials
    }
    alone = study_of(work, "one").trials[0].intermediate_values
    assert values[0.01] and all(alone[step] == value for step, value in values[0.01].items())


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_during_a_trials_training_stops_the_sweep_with_one_line_naming_the_trial(work, signal_name):
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s",
                            "--trainer.callbacks+=tests.helpers.SignalAtStep", "--trainer.callbacks.step=2",
                            f"--trainer.callbacks.signal_name={signal_name}")  # fmt: skip
    result = sweep(work, *command)
    assert result.returncode == 128 + signal.Signals[signal_name], result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"{signal_name} stopped the sweep, trial 0 recorded as failed; 0 of 3 trials are done. "
                           "Continue with: python -m lit_mnist sweep"), result.stderr  # fmt: skip
    (trial,) = study_of(work, "s").trials
    assert trial.state.name == "FAIL" and trial.user_attrs["failure"].startswith("stopped"), trial.user_attrs


def test_a_sigterm_between_two_trials_stops_the_sweep_and_fails_no_trial(work, monkeypatch):
    """The moment between two trials, where Optuna has recorded one and not yet begun the next: the sweep looks for
    a dead worker's trials there, so that is where this test's SIGTERM comes."""
    sent = []

    def sigterm_once_a_trial_is_done(study):
        if done(study) and not sent:
            sent.append(signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", sigterm_once_a_trial_is_done)
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s"))
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("SIGTERM stopped the sweep between two trials; 1 of 3 trials are done. Continue with: "
                           "python -m lit_mnist sweep"), result.stderr  # fmt: skip
    (trial,) = study_of(work, "s").trials
    assert trial.state.name in ("COMPLETE", "PRUNED") and "failure" not in trial.user_attrs


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_as_the_best_trial_is_tested_stops_the_sweep_with_its_line(work, signal_name):
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "1", "--study_name", "s",
                            "--trainer.callbacks+=tests.helpers.SignalAtTestBatch",
                            f"--trainer.callbacks.signal_name={signal_name}")  # fmt: skip
    result = run_in_subprocess(*command, cwd=work)  # a process of its own: a signal ends one that ignores it
    assert result.returncode == 128 + signal.Signals[signal_name], result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"{signal_name} stopped the sweep as it tested the best trial; 1 of 1 trials are done. "
                           "Continue with: python -m lit_mnist sweep"), result.stderr  # fmt: skip
    assert not [key for key in study_of(work, "s").user_attrs if key.startswith("acc/test")]  # tested again next time


def test_a_ctrl_c_while_a_trial_sets_up_stops_the_sweep_with_its_line(work):
    """Before a trial's first step (its data, its sanity check) the signal is the sweep's to act on, not Lightning's."""
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s",
                            "--trainer.callbacks+=tests.helpers.SignalBeforeTraining")  # fmt: skip
    result = sweep(work, *command)
    assert result.returncode == 128 + signal.SIGINT, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("SIGINT stopped the sweep, trial 0 recorded as failed; 0 of 3"), result.stderr
    (trial,) = study_of(work, "s").trials
    assert trial.state.name == "FAIL" and trial.user_attrs["failure"].startswith("stopped"), trial.user_attrs


def test_a_signal_that_comes_as_a_trial_is_pruned_still_stops_the_sweep(work):
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "s",
                            "--trainer.callbacks+=tests.helpers.PrunedAfterASignal")  # fmt: skip
    result = sweep(work, *command)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("SIGTERM stopped the sweep"), result.stderr
    (trial,) = study_of(work, "s").trials
    assert trial.state.name == "FAIL" and trial.user_attrs["failure"].startswith("stopped"), trial.user_attrs


@pytest.mark.parametrize(
    "space, args, expected",
    [
        ("model.learnin_rate: {low: 0.1, high: 1.0}\n", [], "model.learnin_rate is not an option of fit"),
        ("model.learning_rate: {low: 0.1, high: 0.1}\n", [], "the range is empty"),
        ("model.learning_rate: {low: 1.0, high: 0.1}\n", [], "the range is empty"),
        ("model.learning_rate: [low\n", [], "is not valid YAML"),
        ("model.learning_rate: {low: 0.0, high: 1.0, log: true}\n", [], "a log scale needs a low above 0"),
        (SPACE, ["--storage", "postgres ql://x"], "is not a database URL"),
        (SPACE, ["--storage", "postgresql://nobody@127.0.0.1:{port}/none"], "cannot reach the database"),
        (SPACE, ["--trials", "0"], "--trials: must be a whole number of at least 1, got 0"),
        (SPACE, ["--study_name", "a/b"], "--study_name"),
        (SPACE, ["--model.learning_rate", "-1"], "--model.learning_rate -1: must be greater than 0"),
        (SPACE, ["--data.val_size", "0"], "sweep chooses trials by acc/val, and --data.val_size 0"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line_and_writes_nothing(work, space, args, expected):
    (work / "space.yaml").write_text(space)
    args = [arg.replace("{port}", str(free_port())) for arg in args]
    defaults = {"--trials": "3", "--study_name": "s"}
    extra = [word for name, value in defaults.items() if name not in args for word in (name, value)]
    started = time.monotonic()
    result = sweep(work, *sweep_command(work / "data", work / "space.yaml", *extra, *args))
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert time.monotonic() - started < 30  # a database that does not answer is given a few seconds
    assert sorted(path.name for path in work.iterdir()) == ["data", "space.yaml"]


def test_a_study_name_taken_by_another_space_is_refused(work):
    first = sweep(work, *sweep_command(work / "data", work / "space.yaml", "--trials", "1", "--study_name", "s"))
    assert first.returncode == 0, first.stderr
    before = {path: path.stat().st_mtime_ns for path in (work / "lightning_logs").rglob("*")}
    (work / "other.yaml").write_text("model.learning_rate: {low: 1.0e-3, high: 1.0e-1, log: true}\n")
    result = sweep(work, *sweep_command(work / "data", work / "other.yaml", "--trials", "1", "--study_name", "s"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --study_name s exists with another --space; give a new --study_name"
    assert {path: path.stat().st_mtime_ns for path in (work / "lightning_logs").rglob("*")} == before


# PostgreSQL: Debian's server, started as the postgres user in a temporary folder on a free loopback port.


def postgres_binary(name: str) -> Path:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is needed in CI (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found)


@pytest.fixture(scope="module")
def postgres() -> str:
    """A PostgreSQL server of its own; yields the URL of an empty database."""
    pg_ctl, initdb = postgres_binary("pg_ctl"), postgres_binary("initdb")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="lit-mnist-postgres-"))
    if as_postgres:
        shutil.chown(folder, "postgres")
    port = free_port()
    subprocess.run([*as_postgres, str(initdb), "-D", str(folder / "data"), "-U", "postgres", "--auth", "trust"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_postgres, str(pg_ctl), "-D", str(folder / "data"), "-o", options, "-l", str(folder / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)  # fmt: skip
    try:
        psql = postgres_binary("psql")
        subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE sweep"],
                       check=True, capture_output=True, timeout=30)  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/sweep"
    finally:
        subprocess.run([*as_postgres, str(pg_ctl), "-D", str(folder / "data"), "-m", "fast", "-w", "-t", "60", "stop"],
                       capture_output=True, timeout=90)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_study_in_postgresql(work, postgres):
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "6", "--study_name", "shared",
                            "--storage", postgres, "--trainer.callbacks+=tests.helpers.WaitForWorkers",
                            f"--trainer.callbacks.folder={work}")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    workers = []
    for name in ("one", "two"):  # two machines: each its own folder
        (work / name).mkdir()
        workers.append(subprocess.Popen(in_a_process(command), cwd=work / name, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env))  # fmt: skip
    outputs = finish_all(workers)
    numbers = [
        [int(TRIAL_LINE.match(line)[1]) for line in out.splitlines() if TRIAL_LINE.match(line)] for out, _ in outputs
    ]
    assert all(numbers), f"each worker ran some trials: {numbers}; {outputs}"
    study = optuna.load_study(study_name="shared", storage=postgres)
    assert len(done(study)) == 6
    assert sorted(numbers[0] + numbers[1]) == sorted(trial.number for trial in done(study))
    assert all("Best of" in out for out, _ in outputs)


def study_runs(work: Path, name: str) -> list[Path]:
    return sorted((work / "lightning_logs" / name / "study").glob("events.out.tfevents.*"))


def test_two_workers_started_together_share_the_default_store_and_finish_together(work):
    """Two terminals, one folder, the same command a moment apart: both create the study's tables at once, and both
    finish at the same moment, each writing best.yaml and the study's run."""
    command = sweep_command(
        work / "data",
        work / "space.yaml",
        "--trials",
        "4",
        "--study_name",
        "two",
        "--trainer.callbacks+=tests.helpers.WaitForWorkers",
        f"--trainer.callbacks.folder={work}",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(in_a_process(command), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env) for _ in range(2)]  # fmt: skip
    outputs = finish_all(workers)
    study = study_of(work, "two")
    assert len(done(study)) == 4
    best = [line for out, _ in outputs for line in out.splitlines() if line.startswith("Best of")]
    assert len(best) == 2 and len(set(best)) == 1, best  # both say the same, and the best trial was tested once
    # The study's own run: one event file, drawn whole, with every trial in its table.
    (run,) = study_runs(work, "two")
    events = EventAccumulator(str(run.parent))
    events.Reload()
    (table,) = [event.tensor_proto.string_val[0].decode() for event in events.Tensors("trials/text_summary")]
    assert all(f"| {trial.number} |" in table for trial in study.trials)
    config = yaml.safe_load((work / "lightning_logs" / "two" / "best.yaml").read_text())
    assert config["model"]["learning_rate"] == study.best_trial.params["learning_rate"]
    hidden = sorted(path.name for path in (work / "lightning_logs" / "two").iterdir() if path.name.startswith("."))
    assert hidden in ([], [".lock"])  # no worker's partial best.yaml is left behind


AT_ONCE = """
import multiprocessing, sys
from pathlib import Path
import optuna
from lit_mnist.sweep.space import read_space
from lit_mnist.sweep.study import open_storage
from lit_mnist.sweep.tensorboard import write_study_run

def storage(folder, round):  # a new default store, opened by both processes at the same instant
    open_storage(None, folder / f"study{round}")

def study_run(folder, round):  # the study's run drawn again by both processes at the same instant
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder}/study.db")
    write_study_run(folder / "study", study, read_space(folder / "rate.yaml", {"model.learning_rate"}))

def worker(barrier, task, folder, rounds):
    for round in range(rounds):
        barrier.wait(timeout=60)
        globals()[task](Path(folder), round)

if __name__ == "__main__":
    task, folder, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    workers = [spawn.Process(target=worker, args=(barrier, task, folder, rounds)) for _ in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(240)
    sys.exit(0 if all(process.exitcode == 0 for process in workers) else 1)
"""


def two_processes_at_once(task: str, folder: Path, rounds: int) -> subprocess.CompletedProcess:
    """Runs ``task`` of AT_ONCE in two processes, ``rounds`` times, each time both at the same instant."""
    (folder / "at_once.py").write_text(AT_ONCE)  # a file: spawned processes import their target from it
    return subprocess.run([sys.executable, "at_once.py", task, str(folder), str(rounds)], cwd=folder,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})  # fmt: skip


def test_two_workers_creating_the_default_store_at_once_both_open_it(tmp_path):
    result = two_processes_at_once("storage", tmp_path, rounds=10)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_workers_drawing_the_study_run_at_once_leave_one_whole_run(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    rate = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    for value in (0.5, 0.7):
        trial = optuna.trial.create_trial(params={"learning_rate": value / 10}, distributions={"learning_rate": rate},
                                          value=value)  # fmt: skip
        study.add_trial(trial)
    (tmp_path / "rate.yaml").write_text("model.learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}\n")
    result = two_processes_at_once("study_run", tmp_path, rounds=20)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((tmp_path / "study").glob("events.out.tfevents.*"))) == 1


def test_workers_share_the_cores_of_one_machine(work):
    """--workers 2: two worker processes, each with its share of torch's threads, one summary at the end."""
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "4", "--study_name", "pair", "--workers",
                            "2", "--trainer.callbacks+=tests.helpers.WaitForWorkers",
                            f"--trainer.callbacks.folder={work}")  # fmt: skip
    result = run_in_subprocess(*command, cwd=work, env={"OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    numbers = sorted(int(TRIAL_LINE.match(line)[1]) for line in result.stdout.splitlines() if TRIAL_LINE.match(line))
    assert numbers == sorted(trial.number for trial in done(study_of(work, "pair"))) and len(numbers) == 4
    assert result.stdout.count("Best of") == 1 and result.stdout.count("Study pair:") == 1
    started = sorted(work.glob("started-*"))
    assert len(started) == 2  # two processes ran trials
    assert [path.read_text() for path in started] == ["threads 1", "threads 1"]


def test_a_killed_worker_leaves_a_trial_that_the_next_one_marks_failed(work, postgres):
    command = sweep_command(work / "data", work / "space.yaml", "--trials", "3", "--study_name", "killed",
                            "--storage", postgres)  # fmt: skip
    # SIGKILL in the middle of the first trial's training: no cleanup, the trial stays "running" in the database.
    killed = run_in_subprocess(*command, "--trainer.callbacks+=tests.helpers.KillAtStep", "--trainer.callbacks.step=3",
                               cwd=work)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    study = optuna.load_study(study_name="killed", storage=postgres)
    assert [trial.state.name for trial in study.get_trials()] == ["RUNNING"]
    result = sweep(work, *command)  # the same study, continued with short trials
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="killed", storage=postgres)
    assert len(done(study)) == 3
    assert [trial.state.name for trial in study.trials].count("FAIL") == 1
    assert study.trials[0].state.name == "FAIL"  # the killed worker's, marked failed by the next one


class FakeTrial:
    """What objective() asks of an Optuna trial, to see what it raises and records without a study."""

    def __init__(self, number: int) -> None:
        self.number, self.user_attrs = number, {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def sweep_whose_trials_raise(error: BaseException):
    """A Sweep whose every trial raises ``error``: nothing of a real study is needed to see what objective() does."""
    from lit_mnist.sweep.study import Sweep

    class Raising(Sweep):
        def __init__(self) -> None:
            self.stopped_trial = None

        def _trial(self, trial):
            raise error

    return Raising()


def test_lightnings_own_sigterm_in_a_trial_stops_the_sweep_as_a_sigterm_does():
    """Outside the training steps (a validation, the sanity check) Lightning's own SIGTERM handling raises its
    SIGTERMException; the sweep takes it for the SIGTERM it is, and the trial is recorded as stopped."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lit_mnist.sweep.study import Terminated

    trial, sweep = FakeTrial(7), sweep_whose_trials_raise(SIGTERMException())
    with pytest.raises(Terminated):
        sweep.objective(trial)
    assert trial.user_attrs["failure"].startswith("stopped: SIGTERMException") and sweep.stopped_trial == 7


def test_a_pruned_trial_is_not_taken_for_a_stopped_one():
    trial, sweep = FakeTrial(3), sweep_whose_trials_raise(optuna.TrialPruned("pruned at epoch 1"))
    with pytest.raises(optuna.TrialPruned):
        sweep.objective(trial)
    assert "failure" not in trial.user_attrs and sweep.stopped_trial is None
