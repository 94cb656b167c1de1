"""``python -m lit_mnist serve``: the draw-a-digit page and the HTTP API on one LitServe server."""

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib import resources
from multiprocessing import resource_tracker
from typing import Any, Optional

import litserve as ls
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from lightning.pytorch import LightningModule
from litserve.utils import WorkerSetupStatus
from starlette.staticfiles import StaticFiles

from lit_mnist.run.errors import ServerFailed, UserError
from lit_mnist.serving.api import DigitAPI

MAX_BODY_BYTES = 5_000_000  # a photo of a digit fits; anything larger is refused before it is read in full
PAGE = resources.files("lit_mnist.serving") / "page"
EXPECTED_BODY = '{"image": "<base64 of a PNG or JPEG file>"}'
READY_WAIT_SECONDS = 300  # a worker loads torch and the network: seconds, or minutes on a busy machine


_serving = False  # while serve() runs, the processes forked from this one are the server's helpers


def _as_helper_process() -> None:
    """In a process forked while serving: a process group of its own, out of reach of a terminal's Ctrl-C, ended by
    the SIGTERM with which the main process stops it (uvicorn sets its own handler for its graceful shutdown)."""
    if _serving:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_as_helper_process)


class DigitServer(ls.LitServer):
    """LitServe's server, whose main process alone decides when and in which order its processes stop.

    A terminal's Ctrl-C signals every process of its foreground group. The web server (uvicorn, in a process forked
    by LitServe) would then get two signals: that SIGINT and the SIGTERM with which LitServe's main process stops it;
    when the SIGINT is handled second, uvicorn takes it for a second Ctrl-C and quits at once, without the
    application's shutdown, and Starlette reports the cancelled lifespan task with a traceback. So the processes
    that LitServe forks (the web server, the queues' manager) leave the terminal's group, and the inference workers
    start with SIGINT blocked: a Ctrl-C reaches the main process alone, which stops the others in order.

    A stop is carried out where it is safe: while LitServe starts a process, an exception could leave that process
    running unseen. So a signal only asks for the stop (``stop_requested``); the wait for a ready worker ends on it,
    and once the server runs, a thread sets LitServe's shutdown event, as LitServe's own shutdown endpoint does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # LitServe's monitor thread shuts the server down when a worker dies, and races with every other shutdown
        # (it sees the workers that shutdown stopped, or asks the queues' manager after it is gone, and logs an
        # error). Private, the one switch: WorkerWatch (below) does the monitor's job, and stands down first.
        self._monitor_workers = False
        self.stop_requested = threading.Event()
        self.watch = WorkerWatch(self.stop_requested)

    def launch_inference_worker(self, lit_api: ls.LitAPI) -> list[multiprocessing.Process]:
        # A spawned process inherits the signal mask: blocked, SIGINT stays pending in the worker for good, and a
        # Ctrl-C meanwhile still reaches this process (ignoring it here would lose it). Starting the resource
        # tracker unblocks SIGINT, so it is started first.
        resource_tracker.ensure_running()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            workers = super().launch_inference_worker(lit_api)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.watch.start(workers)
        return workers

    def verify_worker_status(self) -> None:
        """Wait until a worker is ready, as LitServe does, or until a stop is asked for."""
        while not self.stop_requested.wait(timeout=0.05):
            statuses = self.workers_setup_status.values()
            if WorkerSetupStatus.READY in statuses or WorkerSetupStatus.ERROR in statuses:
                super().verify_worker_status()  # returns at once, or raises LitServe's error
                threading.Thread(target=self._shut_down_when_asked, daemon=True).start()
                return
        raise StoppedWhileStarting

    def _shut_down_when_asked(self) -> None:
        self.stop_requested.wait()
        self._shutdown_event.set()  # private: what LitServe's shutdown endpoint sets, from a thread of its own


class StoppedWhileStarting(Exception):
    """A stop was asked for before the server was ready."""


class WorkerWatch:
    """Stops the server when an inference worker dies while it serves, unless the server is stopping anyway."""

    def __init__(self, stop_requested: threading.Event) -> None:
        self.stop_requested = stop_requested
        self.stopping = threading.Event()
        self.died: Optional[multiprocessing.Process] = None

    def start(self, workers: list[multiprocessing.Process]) -> None:
        threading.Thread(target=self._wait, args=(workers,), daemon=True).start()

    def _wait(self, workers: list[multiprocessing.Process]) -> None:
        ended = multiprocessing.connection.wait([worker.sentinel for worker in workers])
        if not self.stopping.is_set():
            self.died = next(worker for worker in workers if worker.sentinel in ended)
            self.stop_requested.set()


def build_server(
    model: LightningModule, max_batch_size: int = 8, batch_timeout: float = 0.002, workers: int = 1
) -> DigitServer:
    """A LitServer with the API at POST /predict, the page at / and its files under /static."""
    api = DigitAPI(model, max_batch_size=max_batch_size, batch_timeout=batch_timeout)
    server = DigitServer(
        api, accelerator="auto", workers_per_device=workers, max_payload_size=MAX_BODY_BYTES, timeout=30
    )
    app = server.app
    # LitServe answers / with a line of text; here / is the page.
    app.router.routes = [route for route in app.router.routes if getattr(route, "path", None) != "/"]
    app.add_api_route("/", lambda: FileResponse(str(PAGE / "index.html")), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(packages=[("lit_mnist.serving", "page")]), name="static")
    app.add_exception_handler(RequestValidationError, _bad_request_body)
    return server


def _bad_request_body(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's check of the body, as one line: what is wrong and what is expected."""
    problems = error.errors()
    content_type = request.headers.get("content-type", "application/json")
    if not content_type.startswith("application/json"):  # FastAPI reads such a body as bytes, not JSON
        detail = f"the body must be JSON, Content-Type: application/json (not {content_type}): send {EXPECTED_BODY}"
        return JSONResponse({"detail": detail}, status_code=415)
    if any(problem["type"] == "json_invalid" for problem in problems):
        return JSONResponse({"detail": f"the body is not valid JSON: send {EXPECTED_BODY}"}, status_code=400)
    reasons = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'][1:]) or 'body'}: {problem['msg']}" for problem in problems
    )
    return JSONResponse({"detail": f"{reasons}: send {EXPECTED_BODY}"}, status_code=422)


def serve(server: DigitServer, host: str, port: int, access_log: bool = False) -> None:
    """Run ``server`` until Ctrl-C or SIGTERM, printing the page's address once it answers."""
    _check_port_free(host, port)
    local = "[::1]" if host == "::" else "127.0.0.1"
    stopping, printing = server.watch.stopping, threading.Lock()
    threading.Thread(target=_announce_when_ready, args=(host, local, port, stopping, printing), daemon=True).start()
    global _serving
    _serving = True
    # SIGTERM (docker stop, systemd, kill) stops the server as Ctrl-C does, workers included.
    with signals_ask_to_stop(stopping, server.stop_requested):
        try:
            server.run(
                host=host,
                port=port,
                num_api_servers=1,
                log_level="warning",  # uvicorn's start-up lines name 0.0.0.0 whatever the host: the address is ours
                generate_client_file=False,  # LitServe would write client.py into the current folder
                access_log=access_log,
            )
        except StoppedWhileStarting:
            pass
        finally:
            stopping.set()
            _stop_children()  # those LitServe had not yet handed its shutdown, if the signal came while it started them
            _serving = False
    with printing:
        print("Server stopped.", flush=True)
    died = server.watch.died
    if died is not None:
        raise ServerFailed(f"the inference worker stopped unexpectedly (exit code {died.exitcode}), so the server did")


@contextlib.contextmanager
def signals_ask_to_stop(*events: threading.Event) -> Iterator[None]:
    """While the block runs, Ctrl-C and SIGTERM set ``events``: they only ask for the stop, so a second signal
    changes nothing.

    A handler runs in the main thread between two of its bytecodes, so possibly while that thread holds the lock of
    one of the events (as it does for a moment in each wait on it); setting the event there would wait for ever.
    So the handler only writes to a pipe, and a thread of its own sets the events.
    """
    read_end, write_end = os.pipe()

    def set_events() -> None:
        while os.read(read_end, 1) == b"s":  # b"e" once the block has ended
            for event in events:
                event.set()

    def ask_to_stop(signum: int, frame: Any) -> None:
        os.write(write_end, b"s")

    setter = threading.Thread(target=set_events, daemon=True)
    setter.start()
    previous = {number: signal.signal(number, ask_to_stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        os.write(write_end, b"e")
        setter.join()
        os.close(read_end)
        os.close(write_end)


def _stop_children() -> None:
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=10)


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a closed port is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(f"--port {port}: cannot listen on {host}:{port} ({error.strerror}); choose another port")


def _announce_when_ready(host: str, local: str, port: int, stopping: threading.Event, printing: threading.Lock) -> None:
    deadline = time.monotonic() + READY_WAIT_SECONDS
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through the user's http_proxy
    while time.monotonic() < deadline and not stopping.is_set():
        try:
            with direct.open(f"http://{local}:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:  # not listening yet, or 503 while the worker loads the network
            pass
        time.sleep(0.2)
    else:
        return
    page = f"http://{local}:{port}/"
    if host in ("0.0.0.0", "::"):
        where = f"{page} here, http://{socket.gethostname()}:{port}/ from other machines"
    else:
        where = page
    with printing:
        if not stopping.is_set():
            print(f"Draw a digit at {where}; the API is POST {page}predict. Ctrl-C stops the server.", flush=True)
