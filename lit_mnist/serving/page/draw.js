// The draw-a-digit page: strokes on a canvas (mouse, pen or finger through pointer events), the server's guess while
// drawing, one bar per digit and the 28 x 28 picture the network saw.
"use strict";

const GUESS_DELAY_MS = 120; // debounce: ask once the pen has paused, not on every move
const STROKE_WIDTH = 20; // of 280 pixels: about MNIST's stroke once scaled to its 20-pixel box

const canvas = document.getElementById("canvas");
const context = canvas.getContext("2d");
const prediction = document.getElementById("prediction");
const preview = document.getElementById("preview");
const errorLine = document.getElementById("error");
const upload = document.getElementById("upload");
const answer = document.getElementById("answer");
const bars = [];

for (let digit = 0; digit < 10; digit++) {
  const row = document.createElement("li");
  row.dataset.testid = "probability-" + digit;
  row.dataset.probability = "0";
  row.innerHTML = '<span class="digit">' + digit + '</span><span class="track"><span class="fill"></span></span>' +
    '<span class="percent">0%</span>';
  document.getElementById("probabilities").appendChild(row);
  bars.push(row);
}

let drawing = false;
let hasInk = false;
let pendingGuess = null;
let latestRequest = 0; // answers to older requests than this are dropped: the picture has changed since

function blank() {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  hasInk = false;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * (canvas.width / box.width), (event.clientY - box.top) * (canvas.height / box.height)];
}

function startStroke(event) {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  context.beginPath();
  context.moveTo(x, y);
  context.lineTo(x, y); // a tap leaves a dot
  context.stroke();
  hasInk = true;
  scheduleGuess();
}

function continueStroke(event) {
  if (!drawing) return;
  const [x, y] = point(event);
  context.lineTo(x, y);
  context.stroke();
  scheduleGuess();
}

function endStroke() {
  if (!drawing) return;
  drawing = false;
  scheduleGuess(0);
}

// Busy from the moment the picture changes until its guess is shown: a screen reader then reads one whole answer,
// not bars half way between two.
function setBusy(busy) {
  answer.setAttribute("aria-busy", String(busy));
}

function scheduleGuess(delay = GUESS_DELAY_MS) {
  setBusy(true);
  clearTimeout(pendingGuess);
  pendingGuess = setTimeout(() => {
    if (hasInk) guess(canvas.toDataURL("image/png"));
    else setBusy(false);
  }, delay);
}

async function guess(dataUrl) {
  const request = ++latestRequest;
  setBusy(true);
  const image = dataUrl.slice(dataUrl.indexOf(",") + 1);
  let response;
  let body;
  try {
    response = await fetch("/predict", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image}),
    });
    body = await response.json();
  } catch (error) {
    if (request === latestRequest) showError("The server did not answer: is it still running?");
    return;
  }
  if (request !== latestRequest) return;
  if (!response.ok) {
    showError(body.detail || "The server refused the picture (" + response.status + ")");
    return;
  }
  show(body);
  setBusy(false);
}

function show({digit, probabilities, preview: png}) {
  errorLine.textContent = "";
  prediction.textContent = String(digit);
  probabilities.forEach((probability, index) => {
    const row = bars[index];
    row.dataset.probability = String(probability);
    row.classList.toggle("top", index === digit);
    row.querySelector(".fill").style.width = (100 * probability).toFixed(1) + "%";
    row.querySelector(".percent").textContent = Math.round(100 * probability) + "%";
  });
  preview.src = "data:image/png;base64," + png;
}

function reset() {
  latestRequest++;
  clearTimeout(pendingGuess);
  setBusy(false);
  prediction.textContent = "–";
  errorLine.textContent = "";
  preview.removeAttribute("src");
  for (const row of bars) {
    row.dataset.probability = "0";
    row.classList.remove("top");
    row.querySelector(".fill").style.width = "0";
    row.querySelector(".percent").textContent = "0%";
  }
}

function showError(message) {
  reset();
  errorLine.textContent = message;
}

function clearAll() {
  blank();
  reset();
  upload.value = "";
}

// An uploaded picture is sent as it is (the server prepares it exactly as `predict` prepares files) and shown on
// the canvas, where drawing on it asks again.
function uploadPicture() {
  const file = upload.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const dataUrl = reader.result;
    const picture = new Image();
    picture.onload = () => {
      blank();
      const scale = Math.min(canvas.width / picture.width, canvas.height / picture.height);
      const width = picture.width * scale;
      const height = picture.height * scale;
      context.drawImage(picture, (canvas.width - width) / 2, (canvas.height - height) / 2, width, height);
      hasInk = true;
    };
    picture.src = dataUrl;
    guess(dataUrl);
  };
  reader.readAsDataURL(file);
}

context.lineWidth = STROKE_WIDTH;
context.lineCap = "round";
context.lineJoin = "round";
context.strokeStyle = "#000";
blank();

canvas.addEventListener("pointerdown", startStroke);
canvas.addEventListener("pointermove", continueStroke);
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
document.getElementById("clear").addEventListener("click", clearAll);
upload.addEventListener("change", uploadPicture);
