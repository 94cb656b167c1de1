"""The README's commands, run in order in an empty folder as a newcomer runs them: no warning, no traceback.

Every `python -m lit_mnist` and `tensorboard` line of the README's bash blocks runs, with three changes a machine
without a network or a GPU needs: the real MNIST copy as --data.data_dir, a few hundred steps instead of thousands,
and the GPU lines left out (torchrun, srun and the benchmarks are not `python -m lit_mnist` lines). `serve` runs on a
free port until it has answered a request. The lit_mnist commands run as main(args) in the test's process, which
captures what a user would see of their output and warnings; tests/test_entry_point.py runs `python -m lit_mnist`.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, get_json, run_in_process, tensorboard
from tests.test_serve import serving

pytestmark = pytest.mark.slow  # the real data, TensorBoard and serve

README = REPO / "README.md"
SHORT_RUN = "120"  # steps of a fit the README gives no --trainer.max_steps
CONTINUED_RUN = "260"  # steps of a fit that goes on from a checkpoint (the README's short example stops at 200)
WARNING = re.compile(r"warn|traceback|deprecat", re.IGNORECASE)


def readme_commands() -> list[list[str]]:
    commands, in_bash = [], False
    for line in README.read_text().replace("\\\n", " ").splitlines():  # a trailing backslash continues a line
        if line.strip().startswith("```"):
            in_bash = not in_bash and line.strip() == "```bash"
            continue
        words = shlex.split(line, comments=True) if in_bash else []
        if words[:3] == ["python", "-m", "lit_mnist"] or words[:1] == ["tensorboard"]:
            commands.append(words)
    return commands


def as_run_here(words: list[str], data: Path) -> list[str]:
    """The README's lit_mnist arguments with the real data, short runs and a seed for S."""
    args = [{"S": "1", "../shared/data": str(data), "/path/to/data": str(data)}.get(word, word) for word in words[3:]]
    subcommand = args[0] if args and not args[0].startswith("-") else None
    trains = subcommand in ("fit", "sweep")
    if subcommand in ("fit", "validate", "test", "lr_find", "sweep") and "--data.data_dir" not in args:
        if ("--ckpt_path" not in args or trains) and "--help" not in args:
            args += ["--data.data_dir", str(data)]
    if trains and "--help" not in args and "--print_config" not in args:
        if "--ckpt_path" in args:
            args += ["--trainer.max_steps", CONTINUED_RUN]
        elif "--trainer.max_steps" not in args:
            args += ["--trainer.max_steps", SHORT_RUN]
    return args


def test_every_readme_command_runs_clean(real_data, tmp_path):
    commands = readme_commands()
    assert len(commands) >= 12, "the README's commands were not found"
    shutil.copytree(REPO / "configs", tmp_path / "configs")  # the commands run at the root of a clone
    my_digits = tmp_path / "my_digits"  # the README's predict example reads a folder of the user's pictures
    my_digits.mkdir()
    for name, box in (("three.png", (30, 20, 60, 100)), ("seven.jpg", (20, 30, 70, 90))):
        picture = Image.new("L", (90, 120), 255)
        picture.paste(0, box)
        picture.save(my_digits / name)

    ran = []
    for words in commands:
        if "gpu" in words:
            continue
        if words[0] == "tensorboard":
            runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
            with tensorboard(tmp_path / words[words.index("--logdir") + 1], runs) as url:
                assert sorted(get_json(f"{url}/data/plugin/scalars/tags")) == runs
            ran.append("tensorboard")
            continue
        args = as_run_here(words, real_data)
        if args[0] == "serve":  # runs until stopped: up, answering, then stopped as a user stops it
            with serving(Path(args[args.index("--ckpt_path") + 1]), *args[1:], cwd=tmp_path) as server:
                assert server.predict((my_digits / "three.png").read_bytes())["digit"] in range(10)
            ran.append(" ".join(words))
            continue
        result = run_in_process(*args, cwd=tmp_path)  # the entry point itself: tests/test_entry_point.py
        command = " ".join(words)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        # --help and --print_config print option texts, which may name warnings; their stderr must be empty.
        output = result.stderr if {"--help", "--print_config"} & set(args) else result.stdout + result.stderr
        noise = [line for line in output.splitlines() if WARNING.search(line)]
        assert not noise, f"{command}\n" + "\n".join(noise)
        ran.append(command)

    assert "python -m lit_mnist lr_find --config configs/tuned.yaml" in ran
    # Nothing but the runs, the exported network and the pictures the test made: no data folder, no stray files.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["configs", "lightning_logs", "model.onnx", "my_digits"]
