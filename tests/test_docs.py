"""docs/command-line.md cannot drift from the command line: it names only options the CLI has, and every option of
the project's own groups and subcommands."""

import re

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
