"""The checks of the options that run before anything else: number types (`--model.learning_rate -1`, `nan` or
`inf` fail at once, in one line), values Lightning would fail on mid-run, and --config files that are not YAML."""

import argparse
import difflib
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import yaml
from jsonargparse.typing import restricted_number_type
from lightning.pytorch.cli import LightningArgumentParser

from lit_mnist.run.errors import UserError

PositiveFiniteFloat = restricted_number_type("PositiveFiniteFloat", float, [(">", 0), ("<", float("inf"))])
NonNegativeFiniteFloat = restricted_number_type("NonNegativeFiniteFloat", float, [(">=", 0), ("<", float("inf"))])
Probability = restricted_number_type("Probability", float, [(">=", 0), ("<", 1)])
# Ports below 1024 need root on most systems; LitServe refuses them.
Port = restricted_number_type("Port", int, [(">=", 1024), ("<=", 65535)])


def check_values(config: Any, training: bool) -> None:
    """Values that Lightning accepts and then fails on mid-run (a division by zero, NumPy's seed range, BatchNorm on a
    single image)."""
    seed = config.get("seed_everything")
    if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
        raise UserError(f"--seed_everything must be between 0 and {2**32 - 1} (or true for a random one), got {seed}")
    batch_norm = (config.get("model") or {}).get("batch_norm")
    if training and batch_norm and (config.get("data") or {}).get("batch_size") == 1:
        raise UserError("--model.batch_norm true needs batches of at least 2 images to normalise over; give a "
                        "--data.batch_size of 2 or more")  # fmt: skip
    trainer = config.get("trainer") or {}
    for option in ("log_every_n_steps", "val_check_interval"):
        value = trainer.get(option)
        if value is not None and not value > 0:  # also catches NaN
            raise UserError(f"--trainer.{option} must be greater than 0, got {value}")


def check_config_files(args: Any) -> None:
    """Name the --config file that is not YAML (jsonargparse's message quotes only the parser's complaint)."""
    if not isinstance(args, list):
        return
    for option, value in zip(args, args[1:]):
        if option in ("-c", "--config") and Path(value).is_file():
            try:
                yaml.safe_load(Path(value).read_text())
            except yaml.YAMLError as error:
                where = getattr(error, "problem_mark", None)
                at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
                raise UserError(f"--config {value} is not valid YAML{at}: {getattr(error, 'problem', error)}") from None


RULES = {">": "greater than", ">=": "at least", "<": "less than", "<=": "at most"}


def plain_words(message: str, parser: argparse.ArgumentParser) -> str:
    """jsonargparse's and argparse's messages for the two commonest mistakes, in plain words.

    ``Parser key "model.learning_rate": Not of type PositiveFiniteFloat: -0.01 does not conform to restriction v>0
    and v<inf`` becomes ``--model.learning_rate -0.01: must be greater than 0``; an unknown option gets the nearest
    known one."""
    chosen = re.fullmatch(
        r'Parser key "([^"]+)": Does not validate against any of the Union subtypes .*?'
        r"Problem with given class_path '([^']+)': (.+?) - Expected a <class 'NoneType'>.*",
        message,
    )
    if chosen:  # an option of a class chosen by its class_path (the spiral's data module): its own message, in full
        group, class_path, inner = chosen.groups()
        unknown_option = re.fullmatch(r"Option '(\w+)' is not accepted", inner)
        if unknown_option:
            module, _, name = class_path.rpartition(".")
            options = inspect.signature(getattr(importlib.import_module(module), name)).parameters
            nearest = difflib.get_close_matches(unknown_option[1], options, n=1)
            suggestion = f"; did you mean --{group}.{nearest[0]}?" if nearest else ""
            return f"unrecognized arguments: --{group}.{unknown_option[1]}{suggestion}"
        return plain_words(re.sub(r'^Parser key "', f'Parser key "{group}.', inner), parser)
    not_number = re.fullmatch(r"Parser key \"([^\"]+)\": Expected a <class '(float|int)'>\. Got value: (\S+)", message)
    if not_number:
        key, kind, value = not_number.groups()
        return f"--{key} {value}: must be {'a number' if kind == 'float' else 'a whole number'}"
    number = re.fullmatch(r'Parser key "([^"]+)": Not of type \w+: (\S+) does not conform to restriction (.+)', message)
    if number:
        key, value, restriction = number.groups()
        rules = [re.fullmatch(r"v(>=|<=|>|<)(.+)", rule.strip()) for rule in restriction.split(" and ")]
        words = [f"{RULES[rule[1]]} {rule[2]}" for rule in rules if rule and rule[2] != "inf"]
        if rules and all(rules):
            return f"--{key} {value}: must be {' and '.join(words)}"
    choice = re.fullmatch(r'Parser key "([^"]+)": Expected a (?:typing\.)?Literal\[(.+)\]\. Got value: (\S+)', message)
    if choice:
        key, choices, value = choice.groups()
        names = re.findall(r"'([^']*)'", choices)
        nearest = difflib.get_close_matches(value, names, n=1)
        suggestion = f"; did you mean {nearest[0]}?" if nearest else ""
        return f"--{key} {value}: must be one of {', '.join(names)}{suggestion}"
    unknown = re.fullmatch(r"unrecognized arguments: (--[\w.]+)(.*)", message)
    if unknown:
        known = set(re.findall(r"--[\w.]+", parser.format_help()))
        if "." in unknown[1]:  # a group's option: --model.lr means one of --model's, not --model itself
            known = {option for option in known if "." in option}
        nearest = _nearest(unknown[1], known)
        if nearest:
            return f"unrecognized arguments: {unknown[1]}{unknown[2]}; did you mean {' or '.join(nearest)}?"
    list_value = re.fullmatch(r'Parser key "([^"]+)": Expected a <class \'list\'>\. Got value: (\S+)', message)
    if list_value:
        key, value = list_value.groups()
        return f"--{key} {value}: give a list in brackets, such as [{value.strip('[]()')}]"
    return message


def _nearest(word: str, candidates: set[str]) -> list[str]:
    """At most two candidates for a mistyped option: those it abbreviates in its group (--model.lr: the start of
    --model.lr_schedule, the initials of --model.learning_rate), then the closest spellings."""
    group, _, name = word.rpartition(".")

    def abbreviates(option: str) -> bool:
        option_group, _, option_name = option.rpartition(".")
        initials = "".join(part[:1] for part in option_name.split("_"))
        return option_group == group and (option_name.startswith(name) or initials == name)

    shortened = sorted(option for option in candidates if abbreviates(option))
    scored = sorted(((difflib.SequenceMatcher(None, word, option).ratio(), option) for option in candidates),
                    reverse=True)  # fmt: skip
    best = scored[0][0] if scored else 0.0
    close = [option for score, option in scored[:2] if score >= 0.6 and score >= best - 0.05]
    return list(dict.fromkeys(shortened + close))[:2]


class OneLineErrorParser(LightningArgumentParser):
    """Reports a bad option in one line (what is wrong, where to look) instead of argparse's usage dump."""

    def error(self, message: str, ex: Optional[Exception] = None) -> NoReturn:
        if not self.exit_on_error:
            super().error(message, ex)
        message = plain_words(" ".join(line.strip() for line in message.splitlines() if line.strip()), self)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"error: {message} (see '{prog} --help')\n")
        self.exit(2)


def program_name() -> str:
    program = Path(sys.argv[0]).name
    return "python -m lit_mnist" if program in ("__main__.py", "") else program
