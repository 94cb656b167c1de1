"""The Trainer's own work: the callbacks' empty batch hooks are skipped, the others run on every batch."""

import unittest.mock
from collections import Counter

from lightning.pytorch import Callback
from lightning.pytorch.callbacks import LambdaCallback
from lightning.pytorch.profilers import PassThroughProfiler

from lit_mnist.cli import LitMNISTCLI
from lit_mnist.trainer import BATCH_HOOKS
from tests.conftest import TINY_ARGS

STEPS = 12


class ActionCounter(PassThroughProfiler):
    """Counts the actions Lightning profiles: each callback hook it calls is one, named [Callback]KEY.HOOK."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: Counter[str] = Counter()

    def start(self, action_name: str) -> None:
        self.actions[action_name] += 1


def test_fit_calls_only_the_batch_hooks_a_callback_implements(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--data.data_dir", str(tiny_data), *TINY_ARGS, "--trainer.max_steps", str(STEPS),
            "--trainer.log_every_n_steps", "4"]  # fmt: skip
    with unittest.mock.patch("sys.argv", ["lit_mnist"]):  # LightningCLI warns when given args beside pytest's argv
        cli = LitMNISTCLI(args=args, run=False)
    trainer = cli.trainer
    trainer.profiler = counter = ActionCounter()
    ends = []  # a hook given to the instance, not written in its class
    given = LambdaCallback(on_train_batch_end=lambda *args: ends.append(args[-1]))
    trainer.callbacks.append(given)
    trainer.fit(cli.model, cli.datamodule)
    assert ends == [index % 5 for index in range(STEPS)]  # each batch's index, 5 batches an epoch

    training_hooks = [name for name in BATCH_HOOKS if not name.startswith(("on_validation", "on_test", "on_predict"))]
    skipped = called = 0
    for callback in trainer.callbacks:
        for name in training_hooks:
            implemented = getattr(type(callback), name) is not getattr(Callback, name)
            implemented |= callback is given and name == "on_train_batch_end"
            calls = counter.actions[f"[Callback]{callback.state_key}.{name}"]
            assert calls == (STEPS if implemented else 0), (type(callback).__name__, name, calls)
            skipped += not implemented
            called += implemented
    # The run's own callbacks leave most batch hooks empty, and a few (checkpoints, progress bar) are real.
    assert skipped > 30 and called >= 5
