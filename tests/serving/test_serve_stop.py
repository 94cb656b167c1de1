"""How `serve` stops: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM (to the server,
as `kill` and service managers send it), each many times, at the moments a user stops a server.

Every stop must end with "Server stopped.", exit 0, nothing on stderr, no process of the server left and the port
free. A stop that goes wrong does so at random (it depends on which process handles the signal first), so each
moment is tried several times.
"""

import base64
import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from tests.conftest import REPO, free_port
from tests.serving.test_serve import (
    START_SECONDS,
    assert_no_process_left,
    session_processes,
    start_server,
    stop,
    wait_for_health,
)

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

# Per moment and signal: 5 moments x 1 = 5 stops of each signal; LIT_MNIST_STOP_REPEATS=5 for a harder look.
REPEATS = int(os.environ.get("LIT_MNIST_STOP_REPEATS", "1"))


def _body() -> bytes:
    image = Image.new("L", (280, 280), 255)
    image.paste(0, (110, 50, 170, 230))  # a dark bar on white: a 1 as a user would draw it
    png = io.BytesIO()
    image.save(png, format="PNG")
    return json.dumps({"image": base64.b64encode(png.getvalue()).decode()}).encode()


BODY = _body()


def post(url: str) -> int:
    request = urllib.request.Request(f"{url}/predict", data=BODY, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def wait_for_workers(process: subprocess.Popen) -> None:
    """Wait until the server has started processes of its own (its inference worker is loading): mid start-up."""
    deadline = time.monotonic() + START_SECONDS
    while len(session_processes(process.pid)) < 3:
        assert process.poll() is None, f"the server stopped: {process.communicate()}"
        assert time.monotonic() < deadline, f"no worker processes within {START_SECONDS} s"
        time.sleep(0.05)


def worker_processes(process: subprocess.Popen) -> list[str]:
    pattern = ["-f", "multiprocessing.spawn"]
    return subprocess.run(["pgrep", "-s", str(process.pid), *pattern], capture_output=True, text=True).stdout.split()


def wait_for_the_worker_process(process: subprocess.Popen) -> None:
    """Wait until the inference worker's process exists: the server is still handing it the network then."""
    deadline = time.monotonic() + START_SECONDS
    while not worker_processes(process):
        assert process.poll() is None, f"the server stopped: {process.communicate()}"
        assert time.monotonic() < deadline, f"no worker process within {START_SECONDS} s"
        time.sleep(0.01)


def read_address(process: subprocess.Popen) -> str:
    ready, _, _ = select.select([process.stdout], [], [], 30)
    assert ready, "no address printed within 30 s of /health answering"
    return process.stdout.readline()


@contextlib.contextmanager
def clients_posting(url: str, count: int = 4):
    """Clients sending requests one after another until the block ends; refused or cut answers are expected then."""
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError, urllib.error.URLError):
                post(url)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)


def stop_repeatedly(checkpoint, tmp_path, signum: int, moment: str) -> None:
    """Start the server and stop it with ``signum`` at ``moment``, REPEATS times, each stop checked in full."""
    group = signum == signal.SIGINT  # a terminal's Ctrl-C signals every process of the foreground group
    for attempt in range(REPEATS):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(checkpoint, port, cwd=tmp_path)
        address = ""
        try:
            if moment == "as the worker process starts":
                wait_for_the_worker_process(process)
            elif moment == "start-up":
                wait_for_workers(process)
                time.sleep(attempt * 0.3)  # a little later into the start-up each time
            else:
                wait_for_health(process, url)
                address = read_address(process)
            if moment == "after a batch of requests":
                threads = [threading.Thread(target=post, args=(url,)) for _ in range(16)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=60)
            with clients_posting(url) if moment == "during requests" else contextlib.nullcontext():
                if moment == "during requests":
                    time.sleep(0.1 + attempt * 0.1)
                stopped = stop(process, signum, group)  # also checks that no process of the server is left
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
        where = f"{moment}, stop {attempt + 1}"
        assert stopped.returncode == 0, f"{where}: exit {stopped.returncode}: {stopped.stderr}"
        assert stopped.stderr == "", f"{where}: {stopped.stderr}"
        announced = f"Draw a digit at {url}/; the API is POST {url}/predict. Ctrl-C stops the server.\n"
        printed = address + stopped.stdout
        if moment in ("as the worker process starts", "start-up"):  # it may have become ready just before the signal
            assert printed in ("Server stopped.\n", announced + "Server stopped.\n"), f"{where}: {printed!r}"
        else:
            assert printed == announced + "Server stopped.\n", f"{where}: {printed!r}"
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # nothing listens on the port any more
    assert list(tmp_path.iterdir()) == []  # no client.py, no run folder


# One class per moment: pytest-xdist runs each class on a worker of its own (--dist loadscope), so the server
# starts are shared out rather than queued on one worker.
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])


@SIGNALS
class TestStopAsTheWorkerProcessStarts:
    def test_every_stop_is_clean(self, checkpoint, tmp_path, signum):
        stop_repeatedly(checkpoint, tmp_path, signum, "as the worker process starts")


@SIGNALS
class TestStopDuringStartUp:
    def test_every_stop_is_clean(self, checkpoint, tmp_path, signum):
        stop_repeatedly(checkpoint, tmp_path, signum, "start-up")


@SIGNALS
class TestStopRightAfterTheAddress:
    def test_every_stop_is_clean(self, checkpoint, tmp_path, signum):
        stop_repeatedly(checkpoint, tmp_path, signum, "after the address")


@SIGNALS
class TestStopDuringRequests:
    def test_every_stop_is_clean(self, checkpoint, tmp_path, signum):
        stop_repeatedly(checkpoint, tmp_path, signum, "during requests")


@SIGNALS
class TestStopAfterABatchOfRequests:
    def test_every_stop_is_clean(self, checkpoint, tmp_path, signum):
        stop_repeatedly(checkpoint, tmp_path, signum, "after a batch of requests")


def test_a_worker_that_dies_stops_the_server_with_one_line(checkpoint, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(checkpoint, port, cwd=tmp_path)
    try:
        wait_for_health(process, url)
        address = read_address(process)
        worker = worker_processes(process)
        assert len(worker) == 1, worker
        os.kill(int(worker[0]), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 1, err
    assert err == "error: the inference worker stopped unexpectedly (exit code -9), so the server did\n"
    assert address.startswith("Draw a digit at") and out == "Server stopped.\n"
    assert_no_process_left(process)


def test_a_ctrl_c_while_the_worker_process_is_launched_is_not_lost(monkeypatch):
    """The inference worker must start immune to a terminal's Ctrl-C; the server must still hear one that comes
    meanwhile (with SIGINT ignored during the launch, such a Ctrl-C was lost and the server kept running)."""
    import litserve

    from lit_mnist.model import MNISTClassifier
    from lit_mnist.serving.server import build_server

    heard = []

    def launch_during_a_ctrl_c(self, lit_api):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the signal is delivered at once, unless this thread blocks it
        return []

    monkeypatch.setattr(litserve.LitServer, "launch_inference_worker", launch_during_a_ctrl_c)
    server = build_server(MNISTClassifier())
    monkeypatch.setattr(server.watch, "start", lambda workers: None)  # no worker to watch
    previous = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    try:
        server.launch_inference_worker(server.litapi_connector.lit_apis[0])
        time.sleep(0.1)  # a signal left pending by the launch is handled once it is unblocked
    finally:
        signal.signal(signal.SIGINT, previous)
    assert heard == [signal.SIGINT]


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_still_asks_for_the_stop():
    """A handler runs in the main thread between two of its bytecodes, so also while that thread holds the lock of
    the event the handler would set, as it does for a moment in each of the start-up's waits on it. Setting the
    event from the handler then waited for that lock for ever, and the server never stopped (4 processes left)."""
    code = textwrap.dedent("""
        import os, signal, threading
        from lit_mnist.serving.server import signals_ask_to_stop
        stop = threading.Event()
        with signals_ask_to_stop(stop):
            with stop._cond:  # private: the lock that Event.wait holds for a moment
                os.kill(os.getpid(), signal.SIGTERM)
            print("asked to stop:", stop.wait(timeout=30))
    """)
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the signal's handler waited for the lock that the main thread held: a deadlock")
    assert result.stdout == "asked to stop: True\n", result.stderr
