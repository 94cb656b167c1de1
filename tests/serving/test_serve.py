"""`serve`: the real server in a subprocess on a free loopback port, its API, its page, and how it stops."""

import base64
import contextlib
import csv
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor, resize

from lit_mnist.data.images import read_digit
from lit_mnist.model import MNISTClassifier
from lit_mnist.serving.server import MAX_BODY_BYTES
from tests.conftest import (
    REPO,
    bomb_png,
    first_run,
    free_port,
    launch_chromium,
    make_digits,
    run_in_process,
    run_in_subprocess,
)

pytestmark = pytest.mark.slow  # CLI runs in subprocesses, servers or the real data

START_SECONDS = 180  # a worker process loads torch and the network: slow on a busy machine


class Server:
    """A running `python -m lit_mnist serve`: its process and its address, with the API as a client sees it."""

    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process, self.url = process, url

    def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
        """POST raw bytes to /predict: the status and the JSON answer."""
        request = urllib.request.Request(f"{self.url}/predict", data=body, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            assert error.headers["Content-Type"] == "application/json", error.read()
            return error.code, json.loads(error.read())

    def predict(self, picture: bytes) -> dict:
        status, answer = self.post(json.dumps({"image": base64.b64encode(picture).decode()}).encode())
        assert status == 200, answer
        return answer


@contextlib.contextmanager
def serving(checkpoint: Path, *args: str, cwd: Path) -> Iterator[Server]:
    """The server, up once /health answers; stopped with SIGTERM at the end, which must end it cleanly.

    It listens on a free port: a --port in args is replaced."""
    port = free_port()
    args = [arg for arg in args if arg not in ("--ckpt_path", str(checkpoint))]
    if "--port" in args:
        del args[args.index("--port") : args.index("--port") + 2]
    process = start_server(checkpoint, port, *args, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, url)
        yield Server(process, url)
    finally:
        stopped = stop(process, signal.SIGTERM, group=False)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == "", stopped.stderr  # no warning, no traceback


def start_server(checkpoint: Path, port: int, *args: str, cwd: Path) -> subprocess.Popen:
    """`python -m lit_mnist serve` in a process group of its own (so that a Ctrl-C can be sent to all of it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lit_mnist", "serve", "--ckpt_path", str(checkpoint), "--port", str(port), *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def wait_for_health(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        assert process.poll() is None, f"the server stopped: {process.communicate()}"
        assert time.monotonic() < deadline, f"no answer from {url}/health within {START_SECONDS} s"
        time.sleep(0.2)


def stop(process: subprocess.Popen, signum: int, group: bool) -> subprocess.CompletedProcess:
    """Send the signal (to the whole process group, as a terminal's Ctrl-C does, or to the server alone); return
    how it ended, after checking that none of its processes is left."""
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Every process of its session, helpers in groups of their own included: one left alive would hold the
        # pipes open, and reading them to their end would wait for ever.
        left = session_processes(process.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        out, err = process.communicate(timeout=30)
        raise AssertionError(f"the server did not stop within 60 s of signal {signum} ({len(left)} left): {err}")
    assert_no_process_left(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_no_process_left(process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves once it sees the server gone
    while session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session_processes(process.pid), "processes of the server are left running"


def session_processes(session: int) -> list[str]:
    """Every process of the server's session (it starts one of its own), its helpers in other groups included."""
    return subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True).stdout.split()


def picture(digit: torch.Tensor, size: int = 280, suffix: str = ".png") -> bytes:
    """A 28x28 MNIST digit as a user would draw or photograph it: larger, dark on light, as PNG or JPEG bytes."""
    large = 255 - resize(digit[None].to(torch.uint8), [size, size], antialias=True)[0]
    buffer = io.BytesIO()
    Image.fromarray(large.numpy()).save(buffer, format="PNG" if suffix == ".png" else "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory) -> Iterator[Server]:
    with serving(checkpoint, cwd=tmp_path_factory.mktemp("serve")) as running:
        yield running


@pytest.fixture(scope="module")
def network(checkpoint) -> MNISTClassifier:
    return MNISTClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()


def test_a_picture_gets_its_digit_the_probabilities_and_the_28x28_digit_the_network_saw(server, network, tmp_path):
    images, _ = make_digits(1, seed=5)
    file = tmp_path / "digit.png"
    file.write_bytes(picture(images[0]))
    answer = server.predict(file.read_bytes())

    assert sorted(answer) == ["digit", "preview", "probabilities"]
    probabilities = torch.tensor(answer["probabilities"])
    assert probabilities.shape == (10,) and abs(float(probabilities.sum()) - 1) < 1e-5
    assert answer["digit"] == int(probabilities.argmax())
    seen = pil_to_tensor(Image.open(io.BytesIO(base64.b64decode(answer["preview"]))))[0]
    assert seen.dtype == torch.uint8 and torch.equal(seen, read_digit(file))  # predict's reading of the file
    with torch.no_grad():
        expected = network(read_digit(file).float().div(255)[None, None]).softmax(dim=1)[0]
    assert (probabilities - expected).abs().max() < 1e-5


def test_the_same_files_get_the_same_answers_as_predict(server, checkpoint, tmp_path):
    images, _ = make_digits(12, seed=6)
    folder = tmp_path / "pictures"
    folder.mkdir()
    for index, digit in enumerate(images):
        suffix = ".jpg" if index % 2 else ".png"
        (folder / f"{index:02d}{suffix}").write_bytes(picture(digit, size=100 + 20 * index, suffix=suffix))
    result = run_in_subprocess("predict", "--ckpt_path", str(checkpoint), "--data.predict_path", str(folder),
                               "--output", "predictions.csv", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "predictions.csv") as rows:
        predicted = {Path(row["file"]).name: row for row in csv.DictReader(rows)}
    assert len(predicted) == len(images)
    for name, row in predicted.items():
        answer = server.predict((folder / name).read_bytes())
        assert answer["digit"] == int(row["digit"]), name
        assert abs(max(answer["probabilities"]) - float(row["probability"])) < 1e-5, name


def json_body(image: object) -> bytes:
    return json.dumps({"image": image}).encode()


def image_body(data: bytes) -> bytes:
    return json_body(base64.b64encode(data).decode())


def flat_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 230).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_REQUESTS = {
    "malformed JSON": (b'{"image": "iVBOR', 400, "not valid JSON"),
    "not an object": (b"[1, 2]", 422, "valid dictionary"),
    "no image": (b'{"picture": "aGk="}', 422, "image: Field required"),
    "image not a string": (json_body(12345), 422, "image: Input should be a valid string"),
    "image null": (json_body(None), 422, "image: Input should be a valid string"),
    "not base64": (json_body("this is not base64!"), 400, "image is not base64"),
    "empty image": (json_body(""), 400, "image is empty"),
    "not an image": (image_body(b"%PDF-1.7 certainly not a picture"), 422, "image: not an image"),
    "truncated PNG": (image_body(picture(make_digits(1, seed=4)[0][0])[:300]), 422, "image: not a readable image"),
    "one flat shade": (image_body(flat_png()), 422, "no digit found"),
    # Just over: the server has then read the whole body when it answers, and closes the connection cleanly (a body
    # of which it leaves megabytes unread races with the client, whose send can meet the server's reset first).
    "over the body limit": (json_body("A" * MAX_BODY_BYTES), 413, "Payload too large"),
    # 36 megapixels in 35 KB: under Pillow's own limit, over the server's
    "decompression bomb": (image_body(bomb_png(6_000, 6_000)), 422, "too large to read safely"),
    # 400 megapixels: over Pillow's limit
    "larger bomb": (image_body(bomb_png(20_000, 20_000)), 422, "too large to read safely"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_json_answer_that_says_what_is_wrong(server, name):
    body, status, message = BAD_REQUESTS[name]
    answered, answer = server.post(body)
    assert answered == status, answer
    assert list(answer) == ["detail"] and message in answer["detail"], answer
    assert "Traceback" not in answer["detail"] and "\n" not in answer["detail"]


def test_after_every_bad_request_the_server_still_answers_good_ones(server):
    images, _ = make_digits(1, seed=8)
    good = server.predict(picture(images[0]))
    for body, status, _ in BAD_REQUESTS.values():
        assert server.post(body)[0] == status
    status, answer = server.post(b'{"image": "x"}', content_type="text/plain")
    assert status == 415 and "Content-Type: application/json" in answer["detail"]
    assert server.predict(picture(images[0])) == good


def test_eight_concurrent_clients_get_their_own_answers_even_beside_bad_requests(server):
    """Concurrent requests are answered in batches: a bad request in a batch must not fail the good ones in it."""
    images, _ = make_digits(40, seed=9)
    pictures = [picture(digit, size=56) for digit in images]
    alone = [server.predict(data) for data in pictures]  # one at a time
    requests = [("good", index) for index in range(len(pictures))] * 3
    requests += [("bad", name) for name in BAD_REQUESTS if name not in ("over the body limit", "larger bomb")] * 2
    requests.sort(key=lambda request: hash(request) % 97)  # good and bad interleaved

    def send(request):
        kind, key = request
        if kind == "good":
            return request, server.post(image_body(pictures[key]))
        return request, server.post(BAD_REQUESTS[key][0])

    with ThreadPoolExecutor(max_workers=8) as clients:
        answers = list(clients.map(send, requests))
    for (kind, key), (status, answer) in answers:
        if kind == "good":
            assert status == 200, answer
            assert answer["digit"] == alone[key]["digit"]
            assert max(abs(a - b) for a, b in zip(answer["probabilities"], alone[key]["probabilities"])) < 1e-5
        else:
            assert status == BAD_REQUESTS[key][1], (key, answer)


def test_health_and_the_page_and_its_files_are_served_with_nothing_from_elsewhere(server):
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(f"{server.url}/", timeout=10) as answer:
        page = answer.read().decode()
        assert answer.headers["Content-Type"].startswith("text/html")
    for testid in ("canvas", "clear", "upload", "prediction", "preview"):
        assert f'data-testid="{testid}"' in page
    for asset in ("/static/draw.js", "/static/draw.css"):
        assert asset in page
        with urllib.request.urlopen(f"{server.url}{asset}", timeout=10) as answer:
            text = answer.read().decode()
        assert "http://" not in text and "https://" not in text  # works offline: no CDN, no web fonts
    assert "http://" not in page and "https://" not in page


def test_the_readmes_python_client_reads_a_digit(server, tmp_path, monkeypatch, capsys):
    readme = (REPO / "docs" / "serving.md").read_text()
    example = next(block for block in readme.split("```python\n")[1:] if "/predict" in block).split("```")[0]
    assert "http://127.0.0.1:8000/predict" in example
    images, _ = make_digits(1, seed=3)
    (tmp_path / "my_digits").mkdir()
    (tmp_path / "my_digits" / "three.png").write_bytes(picture(images[0]))
    monkeypatch.chdir(tmp_path)
    exec(example.replace("http://127.0.0.1:8000", server.url), {})
    digit, probability = capsys.readouterr().out.split()
    answer = server.predict((tmp_path / "my_digits" / "three.png").read_bytes())
    assert int(digit) == answer["digit"] and float(probability) == max(answer["probabilities"])


def test_bad_serve_options_get_one_line(checkpoint, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_in_subprocess("serve", "--ckpt_path", str(checkpoint), "--port", str(port), cwd=tmp_path)
    assert busy.returncode == 2 and busy.stderr.startswith(f"error: --port {port}: cannot listen on 127.0.0.1:{port}")
    # A checked option's type (as --host and --max_batch_size are checked), and the missing checkpoint.
    low_port = (["--ckpt_path", str(checkpoint), "--port", "80"], "--port 80: must be at least 1024 and at most 65535")
    for args, message in [low_port, ([], "needs a checkpoint")]:
        result = run_in_process("serve", *args, cwd=tmp_path)  # refused before any server starts
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


# Digits as a hand would draw them on the page's 280 x 280 canvas: strokes of (x, y) points.
ZERO = [[(140 + 55 * math.sin(2 * math.pi * t / 32), 140 - 85 * math.cos(2 * math.pi * t / 32)) for t in range(33)]]
DRAWN = {1: [[(140, 50), (140, 230)]], 7: [[(80, 60), (200, 60), (125, 230)]], 0: ZERO}


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw strokes on the canvas with mouse events, a few pixels at a time as a hand moves."""
    box = page.get_by_test_id("canvas").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=8)
        page.mouse.up()


# JavaScript: the page shows the whole answer for the picture as it now is (see the page's aria-busy).
SETTLED = "document.querySelector('[data-testid=answer]').ariaBusy === 'false'"


def draw_digit(page, digit: int) -> None:
    """Draw one of DRAWN and wait for the page to show that digit as the finished drawing's guess."""
    draw(page, DRAWN[digit])
    page.wait_for_function(
        f"digit => {SETTLED} && document.querySelector('[data-testid=prediction]').textContent === String(digit)",
        arg=digit, timeout=30_000,
    )  # fmt: skip


def shown(page) -> tuple[str, list[float], list[bool]]:
    """The guess as shown, each bar's probability, and which bar is highlighted."""
    prediction = page.get_by_test_id("prediction").inner_text()
    rows = [page.get_by_test_id(f"probability-{digit}") for digit in range(10)]
    return (
        prediction,
        [float(row.get_attribute("data-probability")) for row in rows],
        ["top" in (row.get_attribute("class") or "") for row in rows],
    )


def test_the_answer_is_marked_busy_until_the_latest_pictures_guess_is_shown(server, browser):
    """While the guess for the picture as it now is has not come back, the answer panel says aria-busy: a screen
    reader (and a test) then waits, rather than reading the bars half way through an update."""
    page = browser.new_page()
    held, let_through = [], threading.Event()  # the page's requests for a guess wait until the test lets them go
    page.route("**/predict", lambda route: route.continue_() if let_through.is_set() else held.append(route))
    try:
        page.goto(server.url)
        answer = page.get_by_test_id("answer")
        assert answer.get_attribute("aria-busy") == "false"
        for strokes in (DRAWN[1], DRAWN[7]):  # two pictures: the second stroke changes the first
            with page.expect_request("**/predict", timeout=30_000):
                draw(page, strokes)
        assert answer.get_attribute("aria-busy") == "true"
        assert page.get_by_test_id("prediction").inner_text() == "–"
        let_through.set()
        for route in held:
            route.continue_()
        page.wait_for_function(f"() => {SETTLED}", timeout=30_000)
        canvas = page.evaluate("document.querySelector('[data-testid=canvas]').toDataURL('image/png')")
        latest = server.predict(base64.b64decode(canvas.split(",", 1)[1]))
        prediction, probabilities, _ = shown(page)
        assert prediction == str(latest["digit"])
        assert max(abs(a - b) for a, b in zip(latest["probabilities"], probabilities)) < 1e-5
        page.get_by_test_id("clear").click()
        assert answer.get_attribute("aria-busy") == "false"
    finally:
        page.close()


def wait_for_guess(page, not_this: str = "–") -> None:
    page.wait_for_function(
        f"text => {SETTLED} && document.querySelector('[data-testid=prediction]').textContent !== text",
        arg=not_this, timeout=30_000,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tuned_server(short_tuned_run, tmp_path_factory) -> Iterator[Server]:
    work, _ = short_tuned_run
    checkpoint = first_run(work) / "checkpoints" / "last.ckpt"
    with serving(checkpoint, cwd=tmp_path_factory.mktemp("serve_tuned")) as running:
        yield running


def test_mnist_test_digits_as_large_dark_on_light_pngs_and_jpegs_are_read_right(tuned_server, real_data):
    from torchvision.datasets import MNIST

    test_set = MNIST(str(real_data), train=False)
    indices = range(7, 10_000, 25)  # 400 digits from across the test set
    requests = [picture(test_set.data[i], suffix=".jpg" if n % 2 else ".png") for n, i in enumerate(indices)]
    with ThreadPoolExecutor(max_workers=8) as clients:
        answers = list(clients.map(tuned_server.predict, requests))
    right = sum(answer["digit"] == int(test_set.targets[i]) for answer, i in zip(answers, indices))
    assert right >= 0.95 * len(requests), f"{right} of {len(requests)} right"


def test_the_page_in_a_real_browser_guesses_drawn_digits_clears_and_reads_an_upload(
    tuned_server, browser, real_data, tmp_path
):
    from torchvision.datasets import MNIST

    page = browser.new_page(viewport={"width": 900, "height": 700})
    try:
        page.goto(tuned_server.url)
        for digit in DRAWN:
            draw_digit(page, digit)
            prediction, probabilities, highlighted = shown(page)
            assert abs(sum(probabilities) - 1) < 1e-4 and max(probabilities) > 0.5
            assert highlighted == [index == digit for index in range(10)]
            page.wait_for_timeout(300)  # the bars' transition
            for row, probability in enumerate(probabilities):  # each bar is drawn as long as its probability
                bar = page.get_by_test_id(f"probability-{row}")
                filled = bar.locator(".fill").bounding_box()["width"] / bar.locator(".track").bounding_box()["width"]
                assert abs(filled - probability) < 0.02, (row, filled, probability)
            # What the page shows is the API's answer for the canvas's own picture.
            canvas = page.evaluate("document.querySelector('[data-testid=canvas]').toDataURL('image/png')")
            answer = tuned_server.predict(base64.b64decode(canvas.split(",", 1)[1]))
            assert answer["digit"] == digit
            assert max(abs(a - b) for a, b in zip(answer["probabilities"], probabilities)) < 1e-5
            assert page.get_by_test_id("preview").get_attribute("src").endswith(answer["preview"])
            if digit == 7:
                page.screenshot(path=tmp_path / "page.png")
            page.get_by_test_id("clear").click()
            assert shown(page) == ("–", [0.0] * 10, [False] * 10)
            assert page.get_by_test_id("preview").get_attribute("src") is None

        test_set = MNIST(str(real_data), train=False)
        upload = tmp_path / "upload.jpg"
        upload.write_bytes(picture(test_set.data[0], suffix=".jpg"))
        page.get_by_test_id("upload").set_input_files(str(upload))
        wait_for_guess(page)
        answer = tuned_server.predict(upload.read_bytes())
        assert shown(page)[0] == str(answer["digit"]) == str(int(test_set.targets[0]))
    finally:
        page.close()
    assert (tmp_path / "page.png").stat().st_size > 10_000


def screenshot(checkpoint: Path, path: Path) -> None:
    """The README's picture of the page: a served checkpoint, a 7 drawn as in the browser test."""
    from playwright.sync_api import sync_playwright

    with serving(checkpoint, cwd=path.parent) as running, sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        page = chromium.new_page(viewport={"width": 820, "height": 560})
        page.goto(running.url)
        draw_digit(page, 7)
        page.wait_for_timeout(500)  # the bars' transition
        page.screenshot(path=path)
        chromium.close()


if __name__ == "__main__":
    # python -m tests.serving.test_serve CKPT PNG
    screenshot(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
