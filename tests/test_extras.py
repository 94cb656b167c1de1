"""The core install and its extras: a command whose extra is missing says which, with the pip command, in one line."""

import sys

import pytest

from tests.conftest import REPO, run_in_process


def without(monkeypatch, module: str, *imported_by: str) -> None:
    """Make ``module`` unimportable, as in an install without its extra, and forget the project's modules that import
    it, so that they are imported again."""
    monkeypatch.setitem(sys.modules, module, None)
    for name in [name for name in sys.modules if name.startswith(imported_by)]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize(
    "command, module, line",
    [
        (["serve"], "litserve", "serve needs the serving extra: pip install 'lit-mnist[serve]'"),
        (["export", "--output", "out.onnx"], "onnxscript",
         "export needs the ONNX export extra: pip install 'lit-mnist[export]'"),
    ],
)  # fmt: skip
def test_serve_and_export_without_their_extra_get_one_line(checkpoint, tmp_path, monkeypatch, command, module, line):
    without(monkeypatch, module, "lit_mnist.serving")
    result = run_in_process(*command, "--ckpt_path", str(checkpoint), cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (2, f"error: {line}")
    assert not (tmp_path / "out.onnx").exists()


def test_sweep_without_its_extra_gets_one_line(tmp_path, monkeypatch, capsys):
    from lit_mnist.__main__ import main

    without(monkeypatch, "optuna", "lit_mnist.sweep")
    monkeypatch.setattr(sys, "argv", ["lit-mnist", "sweep", "--space", str(REPO / "configs" / "alchemy.yaml")])
    with pytest.raises(SystemExit) as exit:
        main()
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip() == "error: sweep needs the sweep extra: pip install 'lit-mnist[sweep]'"


def test_a_postgresql_study_without_its_driver_gets_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # SQLAlchemy imports the driver as it connects
    result = run_in_process("sweep", "--space", str(REPO / "configs" / "alchemy.yaml"), "--trials", "1",
                            "--study_name", "shared", "--storage", "postgresql://user@127.0.0.1:9/study",
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: sweep --storage postgresql://... needs the PostgreSQL extra: pip install 'lit-mnist[postgres]'"
    )


def test_importing_the_core_imports_no_extra():
    """The notebook's imports, and fit's, load none of the extras' packages."""
    import subprocess

    code = ("import sys, lit_mnist.cli, lit_mnist.model, lit_mnist.data, lit_mnist.playground.cli; "
            "print(sorted({'litserve', 'onnx', 'onnxscript', 'onnxruntime', 'optuna', 'sqlalchemy', 'psycopg'} "
            "& set(sys.modules)))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
