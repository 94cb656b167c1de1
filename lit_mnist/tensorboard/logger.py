"""Lightning's TensorBoard logger with one graph per run, and run folders that concurrent runs cannot share."""

import re
import warnings
from argparse import Namespace
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch import Tensor

# torch's own tracer for TensorBoard graphs (private, as add_graph offers no way to name the nodes): see log_graph.
from torch.utils.tensorboard._pytorch_graph import graph as pytorch_graph
from torch.utils.tensorboard.summary import hparams

# Settings that say where files are, not how the network was trained: left out of the HPARAMS tab.
NOT_HPARAMS = ("data_dir", "download", "predict_path")
# The HPARAMS tab's columns, the same for one run as for many: the network, how it was trained, and the figures, the
# test's first. TensorBoard shows at most five settings before a box is ticked, and a sixth column would push the
# test figures off a 1400-pixel screen; the full configuration is in the TEXT tab.
HPARAMS_COLUMNS = ("hidden_sizes", "init", "learning_rate", "optimizer")
HPARAMS_METRICS = ("acc/test", "loss/test", "acc/val", "loss/val", "acc/train", "loss/train")


class TensorBoardLogger(LightningTensorBoardLogger):
    """Writes ``<save_dir>/<name>/version_N/``, as Lightning's logger does, with these changes.

    - Hyperparameters go to TensorBoard's HPARAMS tab so that it shows, without a box to tick, the network's
      settings and the final figures, the test's first (HPARAMS_COLUMNS, HPARAMS_METRICS).
    - Lightning's ``epoch`` counter is not logged as a scalar: a staircase in front of the curves.
    - The graph is drawn once per run folder. Lightning draws it at the start of every trainer call, so ``fit``
      followed by the test pass, or a resumed run, would hold several graphs, which TensorBoard warns about.

    Args:
        save_dir: Folder that holds the runs folder.
        name: Runs folder inside save_dir.
        version: Run folder number; None takes the next free one.
        log_graph: Draw the model graph in TensorBoard's GRAPHS tab.
        default_hp_metric: Log Lightning's placeholder ``hp_metric``.
        purge_step: When continuing a run, drop its events from this step on (the resumed run writes them again).
        log_hparams: Write the run's settings to the HPARAMS tab (a sweep writes each trial's searched values instead).
    """

    def __init__(
        self,
        save_dir: str = ".",
        name: Optional[str] = "lightning_logs",
        version: Optional[int | str] = None,
        log_graph: bool = True,
        default_hp_metric: bool = False,
        purge_step: Optional[int] = None,
        log_hparams: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(save_dir, name, version, log_graph, default_hp_metric, purge_step=purge_step, **kwargs)
        self._draw_graph = log_graph
        # A run continued in its old folder (version given) already has its graph and hyperparameters.
        continued = version is not None and any(Path(self.log_dir).glob("events.out.tfevents.*"))
        self._graph_logged = continued
        self._hparams_logged = continued or not log_hparams

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: Optional[dict[str, Any]] = None, step: Optional[int] = None
    ) -> None:
        """Record the hyperparameters: hparams.yaml, and the run's entry in TensorBoard's HPARAMS tab.

        The tab's columns are HPARAMS_COLUMNS and HPARAMS_METRICS, each figure with its last value, so the tab fills
        in with the final figures as they are logged. (Lightning's own entry would make a column of every metric it
        is given at the start, and TensorBoard's default, every setting a column, opens on five of them by name for
        a single run: batch_size, dropout, elastic_alpha, ...)
        """
        super().log_hyperparams(params, metrics, step)
        if self._hparams_logged or metrics:  # with metrics, Lightning has written the HPARAMS entry itself
            return
        # TensorBoard takes numbers, strings and booleans; it would show booleans as 1.0 and 0.0, and it cannot
        # show lists (hidden_sizes) or None, so those are written as text. Lightning's bookkeeping entries
        # (LightningCLI's `_instantiator`) are not settings of the run.
        settings = dict(vars(params) if isinstance(params, Namespace) else params)
        settings = {
            name: value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else str(value)
            for name, value in settings.items()
            if not name.startswith("_") and name not in NOT_HPARAMS
        }
        columns = [
            api_pb2.HParamInfo(
                name=name,
                type=api_pb2.DATA_TYPE_STRING if isinstance(settings[name], str) else api_pb2.DATA_TYPE_FLOAT64,
            )
            for name in HPARAMS_COLUMNS
            if name in settings
        ]
        metrics = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in HPARAMS_METRICS]
        _, session_start, _ = hparams(settings, {})
        experiment = api_pb2.Experiment(hparam_infos=columns, metric_infos=metrics)
        # `file_writer` is the SummaryWriter's open event file, as torch's own add_hparams uses it.
        self.experiment.file_writer.add_summary(hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment))
        self.experiment.file_writer.add_summary(session_start)
        self._hparams_logged = True

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: Optional[int] = None) -> None:
        super().log_metrics({name: value for name, value in metrics.items() if name != "epoch"}, step)

    @rank_zero_only
    def log_graph(self, model: LightningModule, input_array: Optional[Tensor] = None) -> None:
        """Draw the traced model in the GRAPHS tab with its layers at the top level, as the post's picture has them.

        TensorBoard groups nodes by the first part of their ``/``-separated names, and torch names every node
        after the traced module (``MNISTClassifier/Sequential[network]/Linear[layer1]/...``), which would show one
        closed box. The names are rewritten to ``layer1/...``, ``relu1/...``, with ``input`` and ``output``.
        """
        if self._graph_logged or not self._draw_graph:
            return
        input_array = model.example_input_array if input_array is None else input_array
        if input_array is None:
            return
        # Traced in eval mode: the graph is the same, and tracing dropout would draw random numbers that an
        # uninterrupted run and a resumed one would not draw alike.
        was_training = model.training
        model.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                # The tracer behind TensorBoard's graphs is torch.jit.trace, which warns that it is deprecated:
                # nothing a user of this project can act on, and TensorBoard offers no other way to draw the graph.
                warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
                # The tracer reads every attribute of the metric objects, one of which torchmetrics has deprecated.
                warnings.filterwarnings("ignore", message="This property will be removed", category=DeprecationWarning)
                graph_def, step_stats = pytorch_graph(model, (input_array.to(model.device),))
        finally:
            model.train(was_training)
        for node in graph_def.node:
            node.name = top_level_name(node.name)
            node.input[:] = [top_level_name(name) for name in node.input]
        self.experiment.file_writer.add_graph((graph_def, step_stats))
        self._graph_logged = True


def hparams_summary(tag: str, **content: Any) -> Summary:
    """An entry of the HPARAMS tab (its columns, a run's values, how the run ended) as TensorBoard's plugin reads it."""
    data = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **content)
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def top_level_name(name: str) -> str:
    """``MNISTClassifier/Sequential[network]/Linear[layer1]/input.3`` -> ``layer1/input.3``.

    The traced module's own operations (flattening the images, standardising them) go under ``flatten``; the
    ``network`` container disappears, and each layer is named by its attribute, as in ``model.network.layer1``.
    """
    root, *scopes, node = name.split("/")
    if root in ("input", "output"):
        return name
    attributes = [re.sub(r"^\w+\[(\w+)\]$", r"\1", scope) for scope in scopes]
    return "/".join([scope for scope in attributes if scope != "network"] or ["flatten"]) + "/" + node
