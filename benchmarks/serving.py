"""How fast `python -m lit_mnist serve` answers: requests per second and latency on loopback, one client and eight,
with and without LitServe's batching of concurrent requests.

    python benchmarks/serving.py --ckpt_path lightning_logs/version_0/checkpoints/last.ckpt

For each server setting the server starts in its own process (as a user starts it), then each client sends the same
280 x 280 PNG of a drawn 7 (what the page sends) over its own keep-alive HTTP connection: --requests requests in all,
after --warmup requests that are not counted. The clients are threads of this process: they share the machine's
cores with the server, as a browser on the same machine would. Run it alone (no tests, training or other server).
"""

import argparse
import base64
import http.client
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]

# (name, serve options)
SETTINGS = [
    ("no batching", ["--max_batch_size", "1"]),
    ("batching (default: up to 8, 2 ms)", []),
    ("batching, 2 workers", ["--workers", "2"]),
]


def drawn_seven() -> bytes:
    canvas = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(canvas).line([(80, 60), (200, 60), (125, 230)], fill=0, width=20, joint="curve")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def start(ckpt_path: Path, port: int, options: list[str], folder: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "lit_mnist", "serve", "--ckpt_path", str(ckpt_path), "--port", str(port), *options],
        cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server stopped: {process.stderr.read()}")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit("the server did not answer /health within 300 s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def load(port: int, body: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    """Send `requests` requests from `clients` threads; the wall time and every request's latency in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    counts = [requests // clients + (index < requests % clients) for index in range(clients)]

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(count):
            began = time.perf_counter()
            connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            data = answer.read()
            mine.append(time.perf_counter() - began)
            if answer.status != 200 or json.loads(data)["digit"] != 7:
                raise SystemExit(f"unexpected answer {answer.status}: {data[:200]!r}")
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(count,)) for count in counts]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", type=Path, required=True, help="the checkpoint to serve")
    parser.add_argument("--requests", type=int, default=1000, help="requests counted per measurement")
    parser.add_argument("--warmup", type=int, default=100, help="requests sent first and not counted")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    body = json.dumps({"image": base64.b64encode(drawn_seven()).decode()}).encode()

    print(f"{'server setting':<36}{'clients':>8}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for name, options in SETTINGS:
            process = start(args.ckpt_path.resolve(), args.port, options, folder)
            try:
                for clients in (1, 8):
                    load(args.port, body, clients, args.warmup)
                    wall, latencies = load(args.port, body, clients, args.requests)
                    print(
                        f"{name:<36}{clients:>8}{len(latencies) / wall:>12.0f}"
                        f"{1000 * statistics.median(latencies):>9.1f}{1000 * percentile(latencies, 0.99):>9.1f}",
                        flush=True,
                    )
            finally:
                stop(process)


if __name__ == "__main__":
    main()
