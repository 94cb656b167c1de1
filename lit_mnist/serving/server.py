"""``python -m lit_mnist serve``: the draw-a-digit page and the HTTP API on one LitServe server."""

import multiprocessing
import os
import signal
import socket
import threading
import time
import urllib.request
from importlib import resources
from typing import Any

import litserve as ls
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from lightning.pytorch import LightningModule
from starlette.staticfiles import StaticFiles

from lit_mnist.errors import UserError
from lit_mnist.serving.api import DigitAPI

MAX_BODY_BYTES = 5_000_000  # a photo of a digit fits; anything larger is refused before it is read in full
PAGE = resources.files("lit_mnist.serving") / "page"
EXPECTED_BODY = '{"image": "<base64 of a PNG or JPEG file>"}'
READY_WAIT_SECONDS = 300  # a worker loads torch and the network: seconds, or minutes on a busy machine


class DigitServer(ls.LitServer):
    """LitServe's server, whose inference workers leave stopping to the main process."""

    def launch_inference_worker(self, lit_api: ls.LitAPI) -> list[multiprocessing.Process]:
        # Ctrl-C in a terminal reaches every process of the server. Workers start with SIGINT ignored (a spawned
        # process inherits that, and only that): the main process stops them once the web server takes no more
        # requests, instead of each dying mid-answer, or mid-import, with a traceback.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return super().launch_inference_worker(lit_api)
        finally:
            signal.signal(signal.SIGINT, previous)


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
    threading.Thread(target=_announce_when_ready, args=(host, local, port), daemon=True).start()
    # SIGTERM (docker stop, systemd, kill) shuts down like Ctrl-C, stopping the workers too, instead of ending this
    # process alone. The web server's process, forked from this one, inherits the handlers.
    main_process = os.getpid()

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() == main_process:
            raise KeyboardInterrupt
        # In the web server's process: uvicorn has finished its own graceful shutdown and passes the signal on.

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(
            host=host,
            port=port,
            num_api_servers=1,
            log_level="warning",  # uvicorn's start-up lines name 0.0.0.0 whatever the host: the address is ours
            generate_client_file=False,  # LitServe would write client.py into the current folder
            access_log=access_log,
        )
    except KeyboardInterrupt:  # while starting, before LitServe's own handling of Ctrl-C begins
        _stop_children()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    print("Server stopped.")


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


def _announce_when_ready(host: str, local: str, port: int) -> None:
    deadline = time.monotonic() + READY_WAIT_SECONDS
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through the user's http_proxy
    while time.monotonic() < deadline:
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
    print(f"Draw a digit at {where}; the API is POST {page}predict. Ctrl-C stops the server.", flush=True)
