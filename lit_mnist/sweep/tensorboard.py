"""The study in TensorBoard: one HPARAMS row per trial with exactly the searched values, the space's ranges as the
columns' domains, and the study's own run with Optuna's pictures and a table of the trials."""

import warnings
from pathlib import Path
from typing import Any

import optuna
from google.protobuf import struct_pb2
from matplotlib.figure import Figure
from optuna.visualization import matplotlib as plots
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from lit_mnist.sweep.lock import study_lock
from lit_mnist.sweep.space import LAYERS, Space
from lit_mnist.tensorboard.logger import hparams_summary

STATES = ("finished", "pruned", "failed")
METRICS = ("acc/val", "loss/val")


def _value(value: Any) -> struct_pb2.Value:
    if isinstance(value, str):
        return struct_pb2.Value(string_value=value)
    return struct_pb2.Value(number_value=float(value))


def experiment(space: Space) -> Summary:
    """The columns of the HPARAMS tab: the searched values with their ranges, the trial's state and its figures."""
    infos = []
    for column in space.columns:
        if column.choices is not None:
            kind = api_pb2.DATA_TYPE_STRING if isinstance(column.choices[0], str) else api_pb2.DATA_TYPE_FLOAT64
            values = struct_pb2.ListValue(values=[_value(choice) for choice in column.choices])
            infos.append(api_pb2.HParamInfo(name=column.name, type=kind, domain_discrete=values))
        else:
            interval = api_pb2.Interval(min_value=column.low, max_value=column.high)
            infos.append(api_pb2.HParamInfo(name=column.name, type=api_pb2.DATA_TYPE_FLOAT64, domain_interval=interval))
    states = struct_pb2.ListValue(values=[_value(state) for state in STATES])
    infos.append(api_pb2.HParamInfo(name="state", type=api_pb2.DATA_TYPE_STRING, domain_discrete=states))
    metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in METRICS]
    experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics)
    return hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment)


def write_trial_row(folder: Path, trial: optuna.Trial, state: str) -> None:
    """The trial's HPARAMS row, in its own run folder beside the curves it logged."""
    start = plugin_data_pb2.SessionStartInfo(group_name=folder.name, start_time_secs=trial.datetime_start.timestamp())
    for name, value in {**trial.params, "state": state}.items():
        start.hparams[name].CopyFrom(_value(value))
    status = api_pb2.STATUS_SUCCESS if state == "finished" else api_pb2.STATUS_FAILURE
    with SummaryWriter(str(folder)) as writer:
        writer.file_writer.add_summary(hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start))
        end = plugin_data_pb2.SessionEndInfo(status=status)
        writer.file_writer.add_summary(hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))


def write_study_run(folder: Path, study: optuna.Study, space: Space) -> None:
    """The study's own run: the HPARAMS columns, Optuna's pictures in IMAGES and a table of every trial in TEXT."""
    with study_lock(folder.parent):  # workers that finish together draw it in turn
        trials = study.get_trials(deepcopy=False)
        for old in folder.glob("events.out.tfevents.*"):  # the study's run is drawn again whole, by the last worker
            old.unlink()
        _draw_study_run(folder, study, space, trials)


def _draw_study_run(folder: Path, study: optuna.Study, space: Space, trials: list[optuna.trial.FrozenTrial]) -> None:
    with SummaryWriter(str(folder)) as writer:
        writer.file_writer.add_summary(experiment(space))
        lines = [
            "| trial | " + " | ".join(trial_columns(space)) + " | state | acc/val |",
            "|---" * (len(trial_columns(space)) + 3) + "|",
        ]
        for trial in trials:
            values = " | ".join(f"{trial.params.get(name, '')}" for name in trial_columns(space))
            figure = "" if trial.value is None else f"{trial.value:.4f}"
            lines.append(f"| {trial.number} | {values} | {trial.state.name.lower()} | {figure} |")
        writer.add_text("trials", "\n".join(lines))
        finished = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
        if not finished:
            return
        pictures = {"history": plots.plot_optimization_history}
        if len(finished) > 1 and len(space.columns) > 1:
            pictures["importances"] = plots.plot_param_importances
        for name, plot in pictures.items():
            try:
                with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental: nothing to act on
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    axes = plot(study)
            except (ValueError, RuntimeError):  # too few distinct values to say anything yet
                continue
            writer.add_figure(f"study/{name}", axes.figure)
        if {LAYERS, "model.learning_rate"} <= set(space.ranges):
            writer.add_figure("study/width_x_learning_rate", _width_by_rate(finished))


def trial_columns(space: Space) -> list[str]:
    return [column.name for column in space.columns]


def _width_by_rate(trials: list[optuna.trial.FrozenTrial]) -> Figure:
    """acc/val of each finished trial by width and learning rate, one panel per depth."""
    depths = sorted({trial.params["depth"] for trial in trials})
    figure = Figure(figsize=(4 * len(depths), 3.5), layout="constrained")
    for index, depth in enumerate(depths, start=1):
        axes = figure.add_subplot(1, len(depths), index)
        chosen = [trial for trial in trials if trial.params["depth"] == depth]
        widths = [trial.params["width"] for trial in chosen]
        rates = [trial.params["learning_rate"] for trial in chosen]
        points = axes.scatter(widths, rates, c=[trial.value for trial in chosen], cmap="viridis", vmin=0, vmax=1)
        axes.set(xscale="log", yscale="log", xlabel="width", ylabel="learning rate", title=f"depth {depth}")
    figure.colorbar(points, ax=figure.axes, label="acc/val")
    return figure
