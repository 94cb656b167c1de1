"""Shared fixtures: tiny MNIST-format data written by the tests themselves, and a CLI runner."""

import contextlib
import io
import json
import logging
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]


def real_data_folder() -> Path:
    """Where the real MNIST files are: LIT_MNIST_REAL_DATA if set, else the copy beside the checkout (CI has it), else
    the clone's own data/ (where the README puts them, and where fit downloads them)."""
    if "LIT_MNIST_REAL_DATA" in os.environ:
        return Path(os.environ["LIT_MNIST_REAL_DATA"])
    places = [REPO.parent / "shared" / "data", REPO / "data"]
    return next(
        (place for place in places if (place / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()), places[0]
    )


REAL_DATA = real_data_folder()
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; `playwright install` cannot download a browser here


def cpu_has_bfloat16_units() -> bool:
    """The check configs/fast.yaml gives its users: torch reports AVX2 (or less) on a CPU that emulates bfloat16, many
    times slower than float32."""
    return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2")


# Every torch process of the suite takes its share of the cores, set here once: the workers themselves and, through
# the environment they inherit, every process a test starts. Two workers whose subprocesses each took every core
# would oversubscribe the CPU, and torch's thread pool then runs many times slower, not twice.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
os.environ.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
torch.set_num_threads(THREADS)


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file, the format of the MNIST files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(f">BBBB{array.dim()}I", 0, 0, 0x08, array.dim(), *array.shape)
    path.write_bytes(header + array.to(torch.uint8).contiguous().numpy().tobytes())


def make_digits(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable fake digits: each class is a fixed random blob pattern plus noise."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(10, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.7).float() * 255
    labels = torch.arange(count) % 10
    labels = labels[torch.randperm(count, generator=generator)]
    noise = torch.rand(count, 28, 28, generator=generator) * 120
    images = (prototypes[labels] * 0.6 + noise).clamp(0, 255).to(torch.uint8)
    return images, labels.to(torch.uint8)


def write_tiny_mnist(data_dir: Path, train: int = 600, test: int = 200) -> Path:
    raw = data_dir / "MNIST" / "raw"
    for prefix, count, seed in (("train", train, 1), ("t10k", test, 2)):
        images, labels = make_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return data_dir


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A data_dir with 600 training and 200 test images in torchvision's MNIST/raw layout."""
    return write_tiny_mnist(tmp_path / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real MNIST files; CI has them, so a missing copy fails rather than skips."""
    if not (REAL_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real MNIST expected at {REAL_DATA} in CI")
        pytest.skip(f"real MNIST not found in {REPO / 'data'} or {REAL_DATA}: put the four files in data/MNIST/raw/")
    return REAL_DATA


# Small runs on tiny data: the seed network, a few steps, checkpoints often enough to matter.
TINY_ARGS = ["--data.val_size", "100", "--trainer.max_steps", "30", "--last_checkpoint.every_n_train_steps", "10"]


def reported(output: str, metric: str) -> float:
    """The value Lightning's results table printed for a metric (negative, exponent, nan and inf included)."""
    match = re.search(rf"{re.escape(metric)}\s+([-+]?(?:nan|inf|[0-9.]+(?:e[-+]?[0-9]+)?))\s", output)
    assert match, f"no figure for {metric} in the output"
    return float(match.group(1))


def first_run(work: Path) -> Path:
    """The folder of the first run in a folder where `python -m lit_mnist fit` ran: its logs, config and checkpoints."""
    return work / "lightning_logs" / "version_0"


def last_checkpoint(work: Path) -> dict:
    """The last.ckpt of the first run in a folder where `python -m lit_mnist fit` ran."""
    return torch.load(first_run(work) / "checkpoints" / "last.ckpt", weights_only=True)


def run_in_subprocess(
    *args: str, cwd: Path, timeout: float = 300, env: dict | None = None, file_size_limit: int | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m lit_mnist ARGS` in cwd the way a user would, capturing its output.

    file_size_limit: no file the run writes may grow beyond this many bytes, as on a disk that is full: a write past
    it fails with EFBIG (Python ignores the SIGXFSZ that would otherwise end the process).
    """

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, resource.RLIM_INFINITY))

    return subprocess.run(
        [sys.executable, "-m", "lit_mnist", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        preexec_fn=limit_file_size if file_size_limit is not None else None,
    )


def run_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m lit_mnist ARGS` as run_in_subprocess runs it, but as ``main(args)`` in the test's own process (no
    torch to import again): for the tests where no process boundary is under test. Its output, Lightning's log lines
    and the warnings a user would see are captured as run_in_subprocess captures them."""
    from lit_mnist.playground.cli import names_the_spiral

    if args[:1] == ("sweep",):  # as __main__ dispatches it
        from lit_mnist.sweep.command import main

        args = args[1:]
    elif names_the_spiral(list(args)):
        from lit_mnist.playground.cli import main
    else:
        from lit_mnist.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    handlers = [handler for log in loggers for handler in log.handlers if isinstance(handler, logging.StreamHandler)]
    streams = [handler.setStream(stderr) for handler in handlers]
    levels = [log.level for log in loggers]
    previous, argv, code = os.getcwd(), sys.argv, 0
    os.chdir(cwd)
    sys.argv = sys.argv[:1]  # the args are the whole command line, as LightningCLI expects of args
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stdout):
            with contextlib.redirect_stderr(stderr):
                # Hidden outside __main__, as a user's run hides them; the project's own filters stay in place.
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                try:
                    main(list(args))
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    finally:
        os.chdir(previous)
        sys.argv = argv
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)
        for log, level in zip(loggers, levels):
            log.setLevel(level)
    stderr.write("".join(f"{warning.category.__name__}: {warning.message}\n" for warning in caught))
    return subprocess.CompletedProcess(["lit_mnist", *args], code, stdout.getvalue(), stderr.getvalue())


def finish_all(processes: list[subprocess.Popen], timeout: float = 300) -> list[tuple[str, str]]:
    """Wait for processes started together (two machines, two workers), all within ``timeout``; their outputs, after
    checking that each ended well. If one is still running then, all are killed and the failure shows each one's
    output, since a hang of one often starts in another."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(0.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        outputs += [process.communicate() for process in processes[len(outputs) :]]
        ends = "\n".join(f"--- process {n}, exit {p.returncode}:\n{out[-1500:]}\n{err[-1500:]}"
                         for n, (p, (out, err)) in enumerate(zip(processes, outputs)))  # fmt: skip
        pytest.fail(f"still running after {timeout} s:\n{ends}")
    finally:
        for process in processes:
            process.kill()
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return outputs


def free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def get_json(url: str, body: dict | None = None):
    """GET url, or POST body to it as JSON, and read the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


@contextlib.contextmanager
def tensorboard(logdir: Path, runs: list[str], *args: str) -> Iterator[str]:
    """A `tensorboard --logdir` server on a free loopback port, up once it lists these runs; yields its address."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), *args, "--host", "127.0.0.1",
         "--port", str(port), "--reload_interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if sorted(get_json(f"{url}/data/runs")) == sorted(runs):
                    break
            assert process.poll() is None, "TensorBoard stopped"
            assert time.monotonic() < deadline, f"TensorBoard did not list the runs {runs} within 60 s"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A network fitted briefly on tiny data (He initialisation, so that its logits are of ordinary size): the
    plumbing of predict, export and serve needs a checkpoint, not a good one."""
    work = tmp_path_factory.mktemp("fit")
    data = write_tiny_mnist(work / "data")
    result = run_in_process("fit", "--data.data_dir", str(data), *TINY_ARGS, "--model.init", "kaiming",
                            "--trainer.enable_progress_bar", "false", cwd=work)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return first_run(work) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def short_tuned_run(real_data, tmp_path_factory, worker_id) -> tuple[Path, str]:
    """configs/tuned.yaml cut to 1,100 steps (2.5 epochs): its folder and printed output, shared by several tests.

    Made once per suite: under xdist the first worker to need it fits it and the others read it, by the FileLock
    pattern of pytest-xdist's docs. The tests only read the folder.
    """
    if worker_id == "master":  # no xdist: nothing to share
        work = tmp_path_factory.mktemp("tuned")
        return work, fit_short_tuned(real_data, work)
    work = tmp_path_factory.getbasetemp().parent / "tuned"
    output = work / "output.txt"
    with FileLock(f"{work}.lock"):
        if not output.exists():
            shutil.rmtree(work, ignore_errors=True)  # a fit that did not finish
            work.mkdir()
            output.write_text(fit_short_tuned(real_data, work))
    return work, output.read_text()


def fit_short_tuned(real_data: Path, work: Path) -> str:
    result = run_in_process(
        "fit", "--config", str(REPO / "configs" / "tuned.yaml"), "--data.data_dir", str(real_data),
        "--trainer.max_steps", "1100", "--trainer.enable_progress_bar", "false", cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; outside CI a missing one skips, in CI it fails."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.is_file():
        missing = "Playwright for Python" if sync_playwright is None else f"Chromium at {CHROMIUM}"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is needed in CI (.ci/run installs it)")
        pytest.skip(f"{missing} is not installed (apt-get install chromium; pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def launch_chromium(playwright):
    """Debian's headless Chromium, kept off the network, which this machine does not have."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync",
    ])  # fmt: skip


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG that decodes to width x height black pixels, made row by row without ever holding them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), b"\0" * (width + 1)  # filter byte 0, then the row's grey values
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
