"""docs/command-line.md cannot drift from the command line: it names only options the CLI has, and every option of
the project's own groups and subcommands."""

import re
import shlex

import pytest

from tests.conftest import REPO, run_in_process

SUBCOMMANDS = ("fit", "validate", "test", "predict", "lr_find", "export", "serve")
# Lightning's own groups: the page links to their documentation rather than copying every flag.
LIGHTNINGS_OWN = ("--trainer.", "--checkpoint.", "--last_checkpoint.")
GROUPS = {"--model", "--data", "--tensorboard", "--trainer", "--checkpoint", "--last_checkpoint", "--divergence"}


def options_in_help(subcommand: str) -> set[str]:
    result = run_in_process(subcommand, "--help", cwd=REPO)
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"(?:^\s+|^\s+-\w \w+, )(--[\w.]+)", result.stdout, re.MULTILINE))


def documented_options() -> set[str]:
    return set(re.findall(r"(--[a-z_][\w.]*\w)", (REPO / "docs" / "command-line.md").read_text()))


@pytest.fixture(scope="module")
def cli_options() -> dict[str, set[str]]:
    return {subcommand: options_in_help(subcommand) for subcommand in SUBCOMMANDS}


def test_the_command_line_page_names_only_options_the_cli_has(cli_options):
    known = set().union(*cli_options.values()) | {"--help"}
    # A class's own arguments, such as --trainer.logger.save_dir, follow its option (--trainer.logger).
    classes = known - GROUPS
    unknown = {
        option for option in documented_options() if option not in known and option.rsplit(".", 1)[0] not in classes
    }
    assert unknown == set()


def test_the_command_line_page_has_every_option_of_the_projects_own(cli_options):
    own = {
        option
        for options in cli_options.values()
        for option in options
        if not option.startswith(LIGHTNINGS_OWN) and not option.endswith(".help") and option not in GROUPS
    }
    assert own - documented_options() == set()


# The placeholders the pages explain in their text: a seed S, a rate R, a weight decay W.
PLACEHOLDERS = {"S": "1", "R": "0.004", "W": "0.1"}


def docs_commands() -> list[tuple[str, list[str]]]:
    """Every `python -m lit_mnist` line of the docs' bash blocks (a trailing backslash continues a line)."""
    commands = []
    for page in sorted((REPO / "docs").glob("*.md")):
        in_bash = False
        for line in page.read_text().replace("\\\n", " ").splitlines():
            if line.strip().startswith("```"):
                in_bash = not in_bash and line.strip() == "```bash"
                continue
            words = shlex.split(line, comments=True) if in_bash else []
            if words[:3] == ["python", "-m", "lit_mnist"]:
                commands.append((page.name, words[3:]))
    return commands


@pytest.mark.parametrize(
    "page, args", docs_commands(), ids=lambda value: " ".join(value) if isinstance(value, list) else value
)
def test_every_command_of_the_docs_is_accepted_as_written(page, args):
    """Each line's options, values and config files as written (its placeholders filled in): --print_config parses
    them all, and for the sweep its own options, without running minutes of training."""
    args = [PLACEHOLDERS.get(word, word) for word in args]
    if args[0] == "sweep":
        from lit_mnist.sweep.command import parser

        sweep_options, fit_args = parser().parse_known_args(args[1:])
        assert sweep_options.space.is_file()
        args = ["fit", *fit_args]
    result = run_in_process(*args, "--print_config", cwd=REPO)
    assert result.returncode == 0, f"{page}: {' '.join(args)}\n{result.stderr}"
