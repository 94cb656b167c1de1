"""The README's commands, run as written, in the README's order, in an empty folder as a newcomer runs them: no
warning, no traceback.

Every `python -m lit_mnist` and `tensorboard` line of the README's bash blocks runs word for word, in a folder laid out
as a clone (its configs/, the real MNIST files in data/MNIST/raw/ where the README puts them, and a folder of the
user's pictures for predict). `serve` runs on a free port (its one change) until it has answered a request. The
lit_mnist commands run as main(args) in the test's process, which captures what a user would see of their output and
warnings; tests/test_entry_point.py runs `python -m lit_mnist`.
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import REPO, get_json, run_in_process, tensorboard
from tests.serving.test_serve import serving

pytestmark = pytest.mark.slow  # the real data, TensorBoard and serve

README = REPO / "README.md"
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


def test_every_readme_command_runs_as_written_in_order(real_data, tmp_path):
    commands = readme_commands()
    assert len(commands) >= 12, "the README's commands were not found"
    shutil.copytree(REPO / "configs", tmp_path / "configs")  # the commands run at the root of a clone
    (tmp_path / "data").symlink_to(real_data, target_is_directory=True)  # data/MNIST/raw/, as the README says
    my_digits = tmp_path / "my_digits"  # the README's predict example reads a folder of the user's pictures
    my_digits.mkdir()
    for name, box in (("three.png", (30, 20, 60, 100)), ("seven.jpg", (20, 30, 70, 90))):
        picture = Image.new("L", (90, 120), 255)
        picture.paste(0, box)
        picture.save(my_digits / name)

    ran = []
    for words in commands:
        command = " ".join(words)
        if words[0] == "tensorboard":
            runs = sorted(path.name for path in (tmp_path / "lightning_logs").iterdir())
            with tensorboard(tmp_path / words[words.index("--logdir") + 1], runs) as url:
                assert sorted(get_json(f"{url}/data/plugin/scalars/tags")) == runs
            ran.append(command)
            continue
        args = words[3:]
        if args[0] == "serve":  # runs until stopped: up, answering, then stopped as a user stops it
            with serving(Path(args[args.index("--ckpt_path") + 1]), *args[1:], cwd=tmp_path) as server:
                assert server.predict((my_digits / "three.png").read_bytes())["digit"] in range(10)
            ran.append(command)
            continue
        result = run_in_process(*args, cwd=tmp_path)  # the entry point itself: tests/test_entry_point.py
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        # --help and --print_config print option texts, which may name warnings; their stderr must be empty.
        output = result.stderr if {"--help", "--print_config"} & set(args) else result.stdout + result.stderr
        noise = [line for line in output.splitlines() if WARNING.search(line)]
        assert not noise, f"{command}\n" + "\n".join(noise)
        ran.append(command)

    assert len(ran) == len(commands)
    assert "python -m lit_mnist fit --model.learning_rate 0.001 --trainer.max_steps 400 --ckpt_path last" in ran
    # The first fit is the post's experiment in version_0; the block's run went on to 400 steps in its own folder,
    # whose config.yaml says so.
    runs = tmp_path / "lightning_logs"
    assert torch.load(runs / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5000
    assert torch.load(runs / "version_1" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 400
    assert yaml.safe_load((runs / "version_1" / "config.yaml").read_text())["trainer"]["max_steps"] == 400
    # Nothing but the runs, the exported network and what the test laid out: no stray files.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["configs", "data", "lightning_logs", "model.onnx",
                                                                 "my_digits"]  # fmt: skip
