"""The user's flow, run as a user runs it: `python -m lit_mnist ...` in a folder of their own."""

import io
import re
import shutil
from pathlib import Path

import numpy
import PIL.Image
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import (
    REPO,
    TINY_ARGS,
    first_run,
    last_checkpoint,
    reported,
    run_in_process,
    run_in_subprocess,
    write_tiny_mnist,
)

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

# 33 steps: the last ones fall between two saves of last.ckpt (every 10) and after the last full logging interval (5).
STEPS = 33
FIT_ARGS = [*TINY_ARGS, "--trainer.max_steps", str(STEPS), "--trainer.log_every_n_steps", "5"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[Path, str]:
    """One `fit` on tiny data, shared by the tests that read what it wrote."""
    work = tmp_path_factory.mktemp("work")
    data = write_tiny_mnist(work / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *FIT_ARGS, cwd=work)
    assert result.returncode == 0, result.stderr
    return work, result.stdout + result.stderr


def copy_of(fitted, tmp_path: Path) -> Path:
    """A folder with a copy of the fitted run (its data and lightning_logs/version_0), for tests that add runs."""
    work = tmp_path / "work"
    shutil.copytree(fitted[0] / "data", work / "data")
    shutil.copytree(first_run(fitted[0]), first_run(work))
    return work


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_fit_trains_then_reports_the_test_set_once(fitted):
    _, output = fitted
    assert 0.0 <= reported(output, "acc/test") <= 1.0
    assert reported(output, "loss/test") > 0
    assert output.count("acc/test") == 1


def test_run_folder_holds_config_hparams_and_checkpoints(fitted):
    work, _ = fitted
    run = first_run(work)
    assert (run / "config.yaml").is_file() and (run / "hparams.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert sorted(p.name for p in (work / "lightning_logs").iterdir()) == ["version_0"]


def test_tensorboard_has_the_scalars_and_one_graph_with_the_layers(fitted):
    work, _ = fitted
    run = first_run(work)
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/train", "acc/train", "loss/val", "acc/val", "loss/test", "acc/test"} <= scalars
    assert "epoch" not in scalars  # Lightning's epoch counter would be a staircase in front of the curves
    # The batch figures of every 5th step and of the last one, at Lightning's step index (0 for the first step).
    assert [event.step for event in events.Scalars("loss/train")] == [4, 9, 14, 19, 24, 29, 32]
    # Validation after each epoch of 5 batches and after the last step, at the steps of the training figures.
    assert [event.step for event in events.Scalars("acc/val")] == [4, 9, 14, 19, 24, 29, 32]
    assert [event.step for event in events.Scalars("acc/test")] == [STEPS]
    node_names = [node.name for node in events.Graph().node]
    for layer in ("layer1", "layer2", "layer3"):
        assert any(name.startswith(f"{layer}/") for name in node_names), layer
    event_files = run.glob("events.out.tfevents.*")
    graphs = sum(1 for path in event_files if EventAccumulator(str(path)).Reload().Tags()["graph"])
    assert graphs == 1


def test_tensorboard_shows_the_confusion_matrix_and_misclassified_digits_after_the_test(fitted):
    work, output = fitted
    events = EventAccumulator(str(first_run(work)), size_guidance={"images": 0})
    events.Reload()
    assert {"test/confusion_matrix", "test/misclassified"} <= set(events.Tags()["images"])
    for tag in ("test/confusion_matrix", "test/misclassified"):
        (image,) = events.Images(tag)  # one of each, from the one test pass
        assert image.step == STEPS and image.width > 200 and image.height > 200


def test_hparams_tab_has_the_networks_columns_and_every_setting_in_the_row(fitted):
    from tensorboard.plugins.hparams import plugin_data_pb2

    work, _ = fitted
    events = EventAccumulator(str(first_run(work)))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    # The tab's columns, declared once per run (see test_tensorboard.py for what TensorBoard shows of them).
    assert sorted(content) == ["_hparams_/experiment", "_hparams_/session_start_info"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [info.name for info in experiment.hparam_infos] == ["hidden_sizes", "init", "learning_rate", "optimizer"]
    assert [info.name.tag for info in experiment.metric_infos][:2] == ["acc/test", "loss/test"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["learning_rate"].number_value == pytest.approx(1e-4)
    assert session.hparams["batch_size"].number_value == 100
    assert session.hparams["hidden_sizes"].string_value == "[500, 500]"
    assert session.hparams["normalize_inputs"].string_value == "False"  # not 0.0
    assert not {"data_dir", "download", "predict_path"} & set(session.hparams)  # where files are: not settings
    assert not [name for name in session.hparams if name.startswith("_")]  # no Lightning bookkeeping
    # The tab reads each metric's last scalar: the test metrics are there, once.
    assert len(events.Scalars("acc/test")) == 1


def test_logged_training_figures_match_a_direct_computation(fitted):
    """loss/train and acc/train at each logging step are that step's batch figures (as the post prints them),
    recomputed here; Lightning writes step N's at index N - 1."""
    from lit_mnist.data import MNISTDataModule
    from lit_mnist.data.batches import ShuffledBatches
    from lit_mnist.model import MNISTClassifier

    work, _ = fitted
    run = first_run(work)
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    logged_loss = {event.step: event.value for event in events.Scalars("loss/train")}
    logged_acc = {event.step: event.value for event in events.Scalars("acc/train")}

    # Replay the run: same seed, same init, same batches, plain SGD.
    torch.manual_seed(42)
    model = MNISTClassifier()
    datamodule = MNISTDataModule(str(work / "data"), val_size=100)
    datamodule.setup("fit")
    batches = ShuffledBatches(*datamodule.train_data, 100, seed=42)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    step, checked = 0, []
    while step < STEPS:
        for images, labels in batches:
            logits = model(images.unsqueeze(1).float() / 255)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 5 == 0 or step == STEPS:  # each interval, and the last step
                accuracy = (logits.argmax(1) == labels).float().mean().item()
                assert logged_acc[step - 1] == pytest.approx(accuracy, abs=1e-6), step
                assert logged_loss[step - 1] == pytest.approx(loss.item(), rel=1e-4), step
                checked.append(step - 1)
            if step == STEPS:
                break
    assert checked == sorted(logged_loss)


def test_training_figures_are_logged_once_per_interval_of_optimizer_steps_when_gradients_accumulate(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *FIT_ARGS, "--trainer.max_steps", "12",
                            "--trainer.accumulate_grad_batches", "2", "--trainer.enable_progress_bar", "false",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(first_run(tmp_path)), size_guidance={"scalars": 0})
    events.Reload()
    # 24 batches make 12 optimizer steps: a point for steps 5, 10 and the last (at indices 4, 9 and 11).
    assert [event.step for event in events.Scalars("loss/train")] == [4, 9, 11]
    assert [event.step for event in events.Scalars("acc/train")] == [4, 9, 11]


@pytest.mark.parametrize("val_size", ["100", "0"])
def test_last_checkpoint_holds_the_final_step_though_the_last_validation_is_not_the_best(tmp_path, val_size):
    """Lightning writes last.ckpt beside each new best checkpoint and every N steps, and the final step (33, between
    two saves of every 10) is neither here: a rate too small to move a weight makes every validation tie the first."""
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *FIT_ARGS, "--data.val_size", val_size,
                            "--model.learning_rate", "1e-30", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert last_checkpoint(tmp_path)["global_step"] == STEPS


def test_test_subcommand_on_the_checkpoint_gives_the_figures_fit_reported(fitted):
    work, output = fitted
    checkpoint = first_run(work) / "checkpoints" / "last.ckpt"
    result = run_in_process("test", "--data.data_dir", str(work / "data"), "--ckpt_path", str(checkpoint), cwd=work)
    assert result.returncode == 0, result.stderr
    assert reported(result.stdout, "acc/test") == reported(output, "acc/test")
    assert reported(result.stdout, "loss/test") == pytest.approx(reported(output, "loss/test"), rel=1e-6)


def test_test_on_a_checkpoint_reads_the_data_the_run_was_trained_on(fitted, tmp_path):
    """No --data.data_dir: the checkpoint's (fit had an absolute one). Run elsewhere, where ./data does not exist."""
    work, output = fitted
    checkpoint = first_run(work) / "checkpoints" / "last.ckpt"
    result = run_in_process("test", "--ckpt_path", str(checkpoint), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert reported(result.stdout, "loss/test") == pytest.approx(reported(output, "loss/test"), rel=1e-6)
    assert not (tmp_path / "data").exists()

    # The command line wins over the checkpoint.
    result = run_in_process(
        "test", "--ckpt_path", str(checkpoint), "--data.data_dir", "elsewhere", "--data.download", "false", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "MNIST files missing in elsewhere/MNIST/raw" in result.stderr


def test_fine_tuning_from_the_best_checkpoint_starts_a_new_run_and_leaves_the_old_one_alone(fitted, tmp_path):
    work = copy_of(fitted, tmp_path)
    old_run = first_run(work)
    before = snapshot(old_run)
    (best,) = (old_run / "checkpoints").glob("best-*.ckpt")

    result = run_in_process(
        "fit",
        "--data.data_dir",
        str(work / "data"),
        *FIT_ARGS,
        "--trainer.max_steps",
        str(STEPS + 7),
        "--ckpt_path",
        str(best),
        cwd=work,
    )
    assert result.returncode == 0, result.stderr
    assert snapshot(old_run) == before  # not a byte of the old run changed
    new_run = work / "lightning_logs" / "version_1"
    assert torch.load(new_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == STEPS + 7
    assert (new_run / "config.yaml").is_file()


def test_a_checkpoint_already_at_max_steps_gets_one_line(fitted, tmp_path):
    work = copy_of(fitted, tmp_path)
    (best,) = (first_run(work) / "checkpoints").glob("best-*.ckpt")
    best_step = torch.load(best, weights_only=True)["global_step"]
    result = run_in_process(
        "fit",
        "--data.data_dir",
        str(work / "data"),
        *FIT_ARGS,
        "--trainer.max_steps",
        str(best_step),
        "--ckpt_path",
        str(best),
        cwd=work,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: nothing to train: {best} is at step {best_step} and --trainer.max_steps is {best_step}; "
        f"give a --trainer.max_steps above {best_step}"
    ]
    assert [p.name for p in (work / "lightning_logs").iterdir()] == ["version_0"]


def test_continuing_a_one_cycle_run_past_its_planned_steps_gets_one_line(tiny_data, tmp_path):
    """torch's OneCycleLR refuses to step past the total it was made for, which comes back with the checkpoint."""
    schedule = ["--model.optimizer", "adamw", "--model.lr_schedule", "onecycle", "--model.init", "kaiming"]
    first = run_in_process("fit", "--data.data_dir", str(tiny_data), *TINY_ARGS, *schedule, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    last = Path("lightning_logs/version_0/checkpoints/last.ckpt")
    result = run_in_process(
        "fit",
        "--data.data_dir",
        str(tiny_data),
        *TINY_ARGS,
        *schedule,
        "--trainer.max_steps",
        "40",
        "--ckpt_path",
        str(last),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --trainer.max_steps 40: {last}'s one-cycle learning-rate schedule was planned for 30 steps and "
        "cannot go past them; continue to at most 30 steps, or train a new run with more steps from the start"
    ]


def test_resuming_last_picks_the_newest_run_with_the_same_settings(fitted, tmp_path):
    work = copy_of(fitted, tmp_path)
    runs = work / "lightning_logs"
    shutil.copytree(runs / "version_0", runs / "version_1")  # the same settings: the one to continue
    shutil.copytree(runs / "version_0", runs / "version_2")  # newer, but with another learning rate
    config = yaml.safe_load((runs / "version_2" / "config.yaml").read_text())
    config["model"]["learning_rate"] = 0.5
    (runs / "version_2" / "config.yaml").write_text(yaml.safe_dump(config))
    untouched = {name: snapshot(runs / name) for name in ("version_0", "version_2")}

    # The same data settings as the fitted run, data_dir included.
    data = str(fitted[0] / "data")
    result = run_in_process("fit", "--data.data_dir", data, *FIT_ARGS, "--trainer.max_steps", str(STEPS + 3),
                            "--ckpt_path", "last", cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    continued = torch.load(runs / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)
    assert continued["global_step"] == STEPS + 3
    assert {name: snapshot(runs / name) for name in untouched} == untouched
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1", "version_2"]


def test_checkpointing_can_be_switched_off(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.max_steps", "12",
                            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = first_run(tmp_path)
    assert (run / "config.yaml").is_file() and not (run / "checkpoints").exists()


def test_the_fast_recipe_learns_in_bfloat16_on_any_cpu(tiny_data, tmp_path):
    """fast.yaml's bfloat16 autocast from uint8 batches to the loss, on tiny batches so that a CPU which emulates
    bfloat16 runs it quickly too (test_real_data runs the recipe on real digits)."""
    result = run_in_process("fit", "--config", str(REPO / "configs" / "fast.yaml"), "--data.data_dir", str(tiny_data),
                            *TINY_ARGS, "--data.batch_size", "50", "--trainer.log_every_n_steps", "5",
                            "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "precision: bf16-mixed" in (first_run(tmp_path) / "config.yaml").read_text()
    assert reported(result.stdout, "acc/test") >= 0.3  # 30 steps of 10 digit classes: 0.59 here, chance is 0.1


def test_the_seed_config_is_the_default(tmp_path):
    default = run_in_process("fit", "--print_config", cwd=tmp_path)
    seed = run_in_process("fit", "--config", str(REPO / "configs" / "seed.yaml"), "--print_config", cwd=tmp_path)
    assert default.returncode == seed.returncode == 0, default.stderr + seed.stderr
    default_config, seed_config = yaml.safe_load(default.stdout), yaml.safe_load(seed.stdout)
    for key in ("seed_everything", "model", "data", "trainer"):
        assert default_config[key] == seed_config[key], key
    assert seed_config["model"]["learning_rate"] == 0.0001 and seed_config["trainer"]["max_steps"] == 5000


def test_cli_overrides_reach_the_model(tmp_path):
    result = run_in_process("fit", "--model.learning_rate", "0.001", "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["model"]["learning_rate"] == 0.001


@pytest.mark.parametrize("recipe", ["tuned", "fast", "best", "budget"])
def test_the_recipes_keep_the_posts_network(tmp_path, recipe):
    result = run_in_process("fit", "--config", str(REPO / "configs" / f"{recipe}.yaml"), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["model"]["hidden_sizes"] == [500, 500] and config["model"]["init"] == "kaiming"


def test_fit_prints_what_helps_and_none_of_lightnings_noise(fitted):
    _, output = fitted
    assert "Network: layer1 784x500, relu1, layer2 500x500, relu2, layer3 500x10: 648,010 parameters" in output
    assert "Run folder: lightning_logs/version_0. See it in TensorBoard: tensorboard --logdir lightning_logs" in output
    for noise in ("Tip:", "litlogger", "GPU available", "TPU available", "Seed set", "Total Flops", "MeanMetric"):
        assert noise not in output, noise
    assert not [line for line in output.splitlines() if "warn" in line.lower()]


def test_lightnings_information_lines_come_back_with_log_level_info(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_subprocess("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.max_steps", "3",
                     "--trainer.enable_progress_bar", "false", "--log_level", "INFO", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "GPU available" in result.stderr + result.stdout and "Seed set to 42" in result.stderr + result.stdout


def test_a_run_shorter_than_an_epoch_validates_at_its_end(tmp_path):
    """3 steps of an epoch of 5: validated after the last one, so the best checkpoint exists, and no warning."""
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_subprocess("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.max_steps", "3",
                               "--trainer.enable_progress_bar", "false", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = first_run(tmp_path)
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert best.name.startswith("best-step=3-")
    events = EventAccumulator(str(run))
    events.Reload()
    assert [event.step for event in events.Scalars("acc/val")] == [2]  # Lightning's index of the 3rd step
    assert "warn" not in (result.stdout + result.stderr).lower()


def test_a_final_run_trains_on_every_training_digit_and_validates_none(tmp_path):
    """--data.val_size 0, for the run after the settings are chosen: no validation, no best checkpoint (there is
    nothing to choose it by), last.ckpt holds the final step, the test figures are logged, and no warning."""
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_subprocess("fit", "--data.data_dir", str(data), *TINY_ARGS, "--data.val_size", "0",
                               "--trainer.log_every_n_steps", "5", "--trainer.enable_progress_bar", "false",
                               cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # Lightning's warnings, none of which names itself a warning, go there
    run = first_run(tmp_path)
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert last_checkpoint(tmp_path)["global_step"] == 30
    events = EventAccumulator(str(run))
    events.Reload()
    assert "acc/test" in events.Tags()["scalars"] and "acc/val" not in events.Tags()["scalars"]
    # The weights are drawn at the start; the activations and gradients, taken on validation digits, are not.
    histograms = events.Tags()["histograms"]
    assert "network/weights/layer1" in histograms
    assert not [tag for tag in histograms if tag.startswith(("network/activations", "network/gradients"))]


def test_evaluating_a_checkpoint_writes_no_run_folder(fitted, tmp_path):
    work, _ = fitted
    checkpoint = first_run(work) / "checkpoints" / "last.ckpt"
    for subcommand in ("validate", "test"):
        result = run_in_process(subcommand, "--ckpt_path", str(checkpoint), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "warn" not in (result.stdout + result.stderr).lower()
        assert "dirpath has changed" not in result.stderr
        assert not re.search(r"^\s*step\s", result.stdout, re.MULTILINE)  # the results table holds only metrics
    assert list(tmp_path.iterdir()) == []


def test_help_describes_every_subcommand_in_full(tmp_path):
    result = run_in_process("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    # Each subcommand says what it does here, in a sentence of its own (not Lightning's, cut mid-sentence).
    assert "fit Train the network, then test its final weights once on the test digits, as the post does." in text
    assert "validate Evaluate a checkpoint on the 5,000 validation digits." in text
    assert "test Evaluate a checkpoint on the 10,000 test digits." in text
    assert "Runs the full optimization routine" not in text and "never run on your" not in text
    assert 'sweep: Search the post\'s "alchemy" of hyperparameters with Optuna' in text
    assert "predict Predict the digit in each of your images: one line per file, and a CSV file" in text
    assert "lr_find Find a learning rate: Lightning's LR range test" in text
    assert "export Export a checkpoint's network as ONNX" in text
    assert "serve Serve a checkpoint's network: a page to draw digits on at /, and the HTTP API POST /predict." in text


def test_print_config_shows_the_logging_interval_in_use(tmp_path):
    result = run_in_process("fit", "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["trainer"]["log_every_n_steps"] == 50
    assert config["log_level"] == "WARNING"


def test_tensorboard_shows_what_the_network_learned(fitted):
    """Every part of the TensorBoard extras, read back with TensorBoard's own reader."""
    work, _ = fitted
    run = first_run(work)
    events = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    # SCALARS: learning rate (Lightning's LearningRateMonitor), gradient norms and speed at the logging interval.
    assert {"lr-SGD", "lr-SGD-momentum", "train/grad_norm/total", "train/grad_norm/layer1.weight"} <= set(
        tags["scalars"]
    )
    assert [event.step for event in events.Scalars("train/grad_norm/total")] == [4, 9, 14, 19, 24, 29]
    assert all(event.value > 0 for event in events.Scalars("train/grad_norm/total"))  # the step's own gradients
    assert [event.step for event in events.Scalars("train/steps_per_second")] == [4, 9, 14, 19, 24, 29]
    assert all(event.value > 0 for event in events.Scalars("train/images_per_second"))
    # HISTOGRAMS and DISTRIBUTIONS: at the initialisation and after each validation.
    drawn_at = [0, 5, 10, 15, 20, 25, 30, 33]
    histograms = (
        "weights/layer1",
        "biases/layer3",
        "gradients/layer2.weight",
        "activations/relu1",
        "activations/relu2",
    )
    for name in histograms:
        tag = f"network/{name}"
        assert [event.step for event in events.Histograms(tag)] == drawn_at, tag
    initial = events.Histograms("network/weights/layer2")[0].histogram_value
    assert initial.num == 500 * 500 and abs(initial.sum_squares / initial.num - 1) < 0.05  # the post's N(0, 1)
    # IMAGES: 64 first-layer units as 28x28 tiles, 8 by 8 with 2-pixel borders.
    units = events.Images("network/layer1_units")
    assert [image.step for image in units] == drawn_at and (units[0].width, units[0].height) == (242, 242)
    # The last grid is the final weights: unit 0's tile, grey (128) at 0 and white at its largest weight.
    grid = PIL.Image.open(io.BytesIO(units[-1].encoded_image_string))  # add_image writes grey as RGB
    drawn = torch.from_numpy(numpy.array(grid.convert("L")))[None]
    checkpoint = last_checkpoint(work)
    weights = checkpoint["state_dict"]["network.layer1.weight"]
    expected = (weights[0].view(28, 28) / weights[0].abs().max() * 0.5 + 0.5) * 255
    assert drawn.shape == (1, 242, 242) and (drawn[0, 2:30, 2:30].float() - expected).abs().max() <= 0.5
    # Beside them, what training changed since the start, which the checkpoint keeps for a resumed run.
    changes = events.Images("network/layer1_units_change")
    assert [image.step for image in changes] == drawn_at[1:]
    (extras,) = [state for name, state in checkpoint["callbacks"].items() if name.startswith("TensorBoardExtras")]
    change = weights[0] - extras["units_at_start"][0]
    grid = PIL.Image.open(io.BytesIO(changes[-1].encoded_image_string))
    drawn = torch.from_numpy(numpy.array(grid.convert("L")))[None]
    expected = (change.view(28, 28) / change.abs().max() * 0.5 + 0.5) * 255
    assert (drawn[0, 2:30, 2:30].float() - expected).abs().max() <= 0.5
    # PR CURVES: one per digit, from the test pass; TEXT: the configuration.
    assert {f"test/pr_curve/{digit}" for digit in range(10)} <= set(tags["tensors"])
    (text,) = events.Tensors("config/text_summary")
    assert "learning_rate: 0.0001" in text.tensor_proto.string_val[0].decode()
    # PROJECTOR: the last hidden layer of the (200 tiny) test digits, with sprites and true and predicted labels.
    config = (run / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "last_hidden_layer_test:00033"' in config
    (folder,) = (run / "00033").iterdir()
    assert len((folder / "tensors.tsv").read_text().splitlines()) == 200
    metadata = (folder / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "true\tpredicted\tresult" and len(metadata) == 201
    assert (folder / "sprite.png").stat().st_size > 1000


def test_the_graph_opens_on_the_layers(fitted):
    work, _ = fitted
    events = EventAccumulator(str(first_run(work)))
    events.Reload()
    top_level = {node.name.split("/")[0] for node in events.Graph().node}
    assert top_level == {"input", "flatten", "layer1", "relu1", "layer2", "relu2", "layer3", "output"}


def test_each_tensorboard_extra_can_be_switched_off(tmp_path):
    data = write_tiny_mnist(tmp_path / "data")
    off = ["--learning_rate_monitor", "false", "--tensorboard.gradient_norms", "false", "--tensorboard.speed",
           "false", "--tensorboard.histograms", "false", "--tensorboard.first_layer_units", "0",
           "--tensorboard.embedding_digits", "0", "--tensorboard.pr_curves", "false", "--tensorboard.config_text",
           "false", "--trainer.logger.log_graph", "false"]  # fmt: skip
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.max_steps", "12",
                            "--trainer.enable_progress_bar", "false", *off, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = first_run(tmp_path)
    events = EventAccumulator(str(run), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert sorted(tags["scalars"]) == ["acc/test", "acc/train", "acc/val", "loss/test", "loss/train", "loss/val"]
    assert not tags["histograms"] and not tags["graph"]
    assert sorted(tags["images"]) == ["test/confusion_matrix", "test/misclassified"]
    assert [tag for tag in tags["tensors"] if not tag.startswith("_hparams_")] == []
    assert not (run / "projector_config.pbtxt").exists()


def test_the_network_is_drawn_after_every_nth_validation(tmp_path):
    """--tensorboard.every_n_validations 2 on 4 epochs of 5 steps: the weights and units at the start and after the
    2nd and 4th validations, while the curves still have every validation."""
    data = write_tiny_mnist(tmp_path / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--trainer.max_steps", "20",
                            "--tensorboard.every_n_validations", "2", "--trainer.enable_progress_bar", "false",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(first_run(tmp_path)), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("acc/val")] == [4, 9, 14, 19]
    assert [event.step for event in events.Histograms("network/weights/layer1")] == [0, 10, 20]
    assert [event.step for event in events.Histograms("network/activations/relu1")] == [0, 10, 20]
    assert [event.step for event in events.Images("network/layer1_units")] == [0, 10, 20]


@pytest.mark.parametrize("network", [["--model.activation", "tanh"], ["--model.activation", "identity"],
                                     ["--model.hidden_sizes", "[]"]])  # fmt: skip
def test_the_posts_other_networks_train_with_every_tensorboard_part(tmp_path, network):
    """The activations the post names, and the previous post's network with no hidden layer, through fit."""
    data = write_tiny_mnist(tmp_path / "data")
    learns = ["--model.init", "kaiming", "--model.learning_rate", "0.05"]  # in the test's few steps
    result = run_in_process("fit", "--data.data_dir", str(data), *FIT_ARGS, *learns, *network, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert reported(result.stdout, "acc/test") > 0.5
    events = EventAccumulator(str(first_run(tmp_path)))
    events.Reload()
    assert "network/layer1_units" in events.Tags()["images"]
    hidden_layers = 0 if network[1] == "[]" else 2
    activations = [tag for tag in events.Tags()["histograms"] if tag.startswith("network/activations/")]
    assert len(activations) == hidden_layers, activations
