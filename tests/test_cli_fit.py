"""The user's flow, run as a user runs it: `python -m lit_mnist ...` in a folder of their own."""

from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO, TINY_ARGS, reported, run_cli


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, str]:
    """One `fit` on tiny data, shared by the tests that read what it wrote."""
    from tests.conftest import write_tiny_mnist

    work = tmp_path_factory.mktemp("work")
    data = write_tiny_mnist(work / "data")
    result = run_cli("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.log_every_n_steps", "5", cwd=work)
    assert result.returncode == 0, result.stderr
    return work, result.stdout + result.stderr


def test_fit_trains_then_reports_the_test_set_once(fitted):
    _, output = fitted
    assert 0.0 <= reported(output, "test/acc") <= 1.0
    assert reported(output, "test/loss") > 0
    assert output.count("test/acc") == 1


def test_run_folder_holds_config_hparams_and_checkpoints(fitted):
    work, _ = fitted
    run = work / "lightning_logs" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "hparams.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert sorted(p.name for p in (work / "lightning_logs").iterdir()) == ["version_0"]


def test_tensorboard_has_the_scalars_and_one_graph_with_the_layers(fitted):
    work, _ = fitted
    run = work / "lightning_logs" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"} <= scalars
    assert len(events.Scalars("train/loss")) == 30 // 5  # one point per logging interval
    node_names = [node.name for node in events.Graph().node]
    for layer in ("layer1", "layer2", "layer3"):
        assert any(f"[{layer}]" in name for name in node_names), layer
    event_files = run.glob("events.out.tfevents.*")
    graphs = sum(1 for path in event_files if EventAccumulator(str(path)).Reload().Tags()["graph"])
    assert graphs == 1


def test_tensorboard_shows_the_confusion_matrix_and_misclassified_digits_after_the_test(fitted):
    work, output = fitted
    events = EventAccumulator(str(work / "lightning_logs" / "version_0"), size_guidance={"images": 0})
    events.Reload()
    assert {"test/confusion_matrix", "test/misclassified"} <= set(events.Tags()["images"])
    for tag in ("test/confusion_matrix", "test/misclassified"):
        (image,) = events.Images(tag)  # one of each, from the one test pass
        assert image.step == 30 and image.width > 200 and image.height > 200


def test_hparams_tab_lists_the_hyperparameters_and_the_final_metrics(fitted):
    from tensorboard.plugins.hparams import plugin_data_pb2

    work, _ = fitted
    events = EventAccumulator(str(work / "lightning_logs" / "version_0"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {"test/acc", "test/loss", "val/acc", "val/loss"} <= metrics
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["learning_rate"].number_value == pytest.approx(1e-4)
    assert session.hparams["batch_size"].number_value == 100
    assert not [name for name in session.hparams if name.startswith("_")]  # no Lightning bookkeeping
    # The tab reads each metric's last scalar: the test metrics are there, once.
    assert len(events.Scalars("test/acc")) == 1


def test_logged_training_figures_match_a_direct_computation(fitted):
    """train/acc at each logging step is the accuracy over the steps since the previous one, recomputed here."""
    import torch

    from lit_mnist.batches import ShuffledBatches
    from lit_mnist.data import MNISTDataModule
    from lit_mnist.model import MNISTClassifier

    work, _ = fitted
    run = work / "lightning_logs" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    logged_loss = {event.step: event.value for event in events.Scalars("train/loss")}
    logged_acc = {event.step: event.value for event in events.Scalars("train/acc")}

    # Replay the run: same seed, same init, same batches, plain SGD.
    torch.manual_seed(42)
    model = MNISTClassifier()
    datamodule = MNISTDataModule(str(work / "data"), val_size=100)
    datamodule.setup("fit")
    batches = ShuffledBatches(*datamodule.train_data, 100, seed=42)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    losses, correct, seen, step = [], 0, 0, 0
    while step < 30:
        for images, labels in batches:
            logits = model(images.unsqueeze(1).float() / 255)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item() * len(labels))
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            step += 1
            if step % 5 == 0:
                # Lightning writes step-based metrics at the step before the counter moves: global_step - 1.
                assert logged_acc[step - 1] == pytest.approx(correct / seen, abs=1e-6)
                assert logged_loss[step - 1] == pytest.approx(sum(losses) / seen, rel=1e-4)
                losses, correct, seen = [], 0, 0
            if step == 30:
                break


def test_test_subcommand_on_the_checkpoint_gives_the_accuracy_fit_reported(fitted):
    work, output = fitted
    checkpoint = work / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    result = run_cli("test", "--data.data_dir", str(work / "data"), "--ckpt_path", str(checkpoint), cwd=work)
    assert result.returncode == 0, result.stderr
    assert reported(result.stdout, "test/acc") == reported(output, "test/acc")
    assert reported(result.stdout, "test/loss") == pytest.approx(reported(output, "test/loss"), rel=1e-6)


def test_the_seed_config_is_the_default(tmp_path):
    default = run_cli("fit", "--print_config", cwd=tmp_path)
    seed = run_cli("fit", "--config", str(REPO / "configs" / "seed.yaml"), "--print_config", cwd=tmp_path)
    assert default.returncode == seed.returncode == 0, default.stderr + seed.stderr
    default_config, seed_config = yaml.safe_load(default.stdout), yaml.safe_load(seed.stdout)
    for key in ("seed_everything", "model", "data", "trainer"):
        assert default_config[key] == seed_config[key], key
    assert seed_config["model"]["learning_rate"] == 0.0001 and seed_config["trainer"]["max_steps"] == 5000


def test_cli_overrides_reach_the_model(tmp_path):
    result = run_cli("fit", "--model.learning_rate", "0.001", "--print_config", cwd=tmp_path)
    assert yaml.safe_load(result.stdout)["model"]["learning_rate"] == 0.001


def test_the_tuned_config_keeps_the_posts_network(tmp_path):
    result = run_cli("fit", "--config", str(REPO / "configs" / "tuned.yaml"), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["model"]["hidden_sizes"] == [500, 500] and config["model"]["init"] == "kaiming"
