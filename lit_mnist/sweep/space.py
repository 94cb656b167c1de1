"""The search space: a YAML file that names the CLI's own options, each with the range to search.

    model.learning_rate: {low: 1.0e-5, high: 1.0, log: true}     # a float: low and high are floats
    data.batch_size: {low: 32, high: 512, log: true}             # an integer: low and high are integers
    model.optimizer: {choices: [sgd, adamw]}                     # one of a list
    model.hidden_sizes: {depth: {low: 1, high: 4}, width: {low: 32, high: 1024, log: true}}

``model.hidden_sizes`` is searched as a depth and one width for every hidden layer, as the post's [500, 500] is.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
import yaml

from lit_mnist.run.errors import UserError

LAYERS = "model.hidden_sizes"


@dataclass(frozen=True)
class Range:
    """One searched number, or one of a list of choices; ``name`` is its column in Optuna and TensorBoard."""

    name: str
    low: Any = None
    high: Any = None
    log: bool = False
    choices: Optional[tuple] = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, self.choices)
        if isinstance(self.low, int):
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Space:
    """The options searched, in the order of the file; ``ranges`` maps each option to its ranges."""

    ranges: dict[str, tuple[Range, ...]]
    text: str  # the file as read: a study keeps it, so that a second command with another space is refused

    def suggest(self, trial: optuna.Trial) -> list[str]:
        """The trial's values as command-line options (``--model.learning_rate=0.01``)."""
        options = []
        for option, ranges in self.ranges.items():
            values = [value.suggest(trial) for value in ranges]
            value = [values[1]] * values[0] if option == LAYERS else values[0]
            options.append(f"--{option}={value}")
        return options

    @property
    def columns(self) -> list[Range]:
        return [value for ranges in self.ranges.values() for value in ranges]


def read_space(path: Path, known: Any) -> Space:
    """Read and check a space file; ``known`` is the CLI's configuration, whose option names the file must use."""
    try:
        text = Path(path).read_text()
        entries = yaml.safe_load(text)
    except OSError as error:
        raise UserError(f"--space {path}: {error.strerror}; give the path of a YAML file") from None
    except yaml.YAMLError as error:
        raise UserError(f"--space {path} is not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(entries, dict) or not entries:
        raise UserError(f"--space {path}: expected options with their ranges, such as model.learning_rate: "
                        "{low: 1.0e-5, high: 1.0, log: true}")  # fmt: skip
    ranges = {}
    for option, spec in entries.items():
        where = f"--space {path}: {option}"
        if not isinstance(option, str) or option not in known or "." not in option:
            raise UserError(f"{where} is not an option of fit; see python -m lit_mnist fit --help")
        if option == LAYERS:
            if not isinstance(spec, dict) or set(spec) != {"depth", "width"}:
                raise UserError(f"{where} needs a depth and a width, each with its range")
            depth, width = (_range(name, spec[name], f"{where}.{name}") for name in ("depth", "width"))
            if not (isinstance(depth.low, int) and isinstance(width.low, int) and depth.low >= 1 and width.low >= 1):
                raise UserError(f"{where}: depth and width are whole numbers of at least 1")
            ranges[option] = (depth, width)
        else:
            ranges[option] = (_range(option.rsplit(".", 1)[1], spec, where),)
    return Space(ranges, text)


def _range(name: str, spec: Any, where: str) -> Range:
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}: choices must be a list of at least one value")
        return Range(name, choices=tuple(choices))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) <= {"low", "high", "log"}:
        raise UserError(f"{where}: give {{low: ..., high: ...}} (and log: true for a log scale), or {{choices: [...]}}")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (low, high))
    if not numbers or not all(math.isfinite(value) for value in (low, high)):
        raise UserError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
    if not low < high:
        raise UserError(f"{where}: the range is empty: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: a log scale needs a low above 0, got {low}")
    if isinstance(low, int) and isinstance(high, int):
        return Range(name, low, high, log)
    return Range(name, float(low), float(high), log)
