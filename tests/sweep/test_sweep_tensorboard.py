"""The study's own run in TensorBoard, written from an in-memory study: no sweep, no training."""

import warnings

import optuna
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lit_mnist.sweep.space import Range, Space
from lit_mnist.sweep.tensorboard import write_study_run

RATE = Range("learning_rate", 1e-4, 1e-1, log=True)
ALPHA = Range("elastic_alpha", 0.0, 34.0)
DEPTH, WIDTH = Range("depth", 1, 2), Range("width", 8, 64, log=True)


def finished_study(space: Space, values: list[dict]) -> optuna.Study:
    """A study of one finished trial per dict of values, drawn through the space's own suggest()."""
    study = optuna.create_study(direction="maximize")
    for params in values:
        study.enqueue_trial(params)

    def objective(trial: optuna.Trial) -> float:
        space.suggest(trial)
        return 0.9 + trial.number / 100

    study.optimize(objective, n_trials=len(values))
    return study


@pytest.mark.parametrize(
    "ranges, values, drawn",
    [
        ({"model.hidden_sizes": (DEPTH, WIDTH), "model.learning_rate": (RATE,)},
         [{"depth": 1, "width": 16, "learning_rate": 1e-3}, {"depth": 2, "width": 32, "learning_rate": 1e-2}], True),
        # A recipe's knobs, no width: the picture of acc/val by width and learning rate has nothing to show.
        ({"model.learning_rate": (RATE,), "data.elastic_alpha": (ALPHA,)},
         [{"learning_rate": 1e-3, "elastic_alpha": 10.0}, {"learning_rate": 1e-2, "elastic_alpha": 20.0}], False),
    ],
)  # fmt: skip
def test_the_width_by_learning_rate_picture_is_drawn_only_where_both_are_searched(tmp_path, ranges, values, drawn):
    space = Space(ranges, text="")
    study = finished_study(space, values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a log scale over widths that were never searched
        write_study_run(tmp_path, study, space)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    images = events.Tags()["images"]
    assert "study/history" in images
    assert ("study/width_x_learning_rate" in images) is drawn
