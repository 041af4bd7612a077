// ferkit web page: pick, drop or capture a photo, POST it to /predict, draw the boxes and the per-face
// probability bars. No external libraries; everything from the server's answer is inserted as text.
"use strict";

const COLOURS = ["#1f6feb", "#2da44e", "#bf3989", "#8250df", "#0969da", "#1a7f37", "#cf222e", "#6e7781"];
const UNCERTAIN = "#d97706";
const $ = (id) => document.getElementById(id);
const state = { model: null, stream: null };

function setStatus(text) { $("status").textContent = text; }

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function percent(p) { return (100 * p).toFixed(1) + "%"; }

async function loadModelInfo() {
  try {
    const resp = await fetch("/model");
    const info = await resp.json();
    state.model = info;
    const thr = info.abstain_above == null ? "no abstention threshold"
      : "faces with uncertainty above " + info.abstain_above + " are marked uncertain";
    $("model-info").textContent = "Model: " + info.method + " (ferkit " + info.version + "), classes: "
      + info.classes.join(", ") + "; " + thr + ".";
    if (info.limits) {
      $("limits").textContent = "JPEG, PNG, WebP, BMP, GIF or TIFF, up to " + info.limits.max_upload_mb
        + " MiB and " + (info.limits.max_pixels / 1e6).toFixed(1) + " megapixels.";
    }
  } catch (err) {
    $("model-info").textContent = "Could not read /model (" + err + ").";
  }
}

async function decodeForDisplay(blob) {
  if (window.createImageBitmap) {
    return await createImageBitmap(blob, { imageOrientation: "from-image" });
  }
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.src = url;
  await img.decode();
  return img;
}

async function send(blob, name) {
  showError("");
  const limits = state.model && state.model.limits;
  if (limits && blob.size > limits.max_upload_mb * 1024 * 1024) {
    showError("This file is larger than the server's limit of " + limits.max_upload_mb + " MiB.");
    return;
  }
  setStatus("Finding faces in " + name + "…");
  const form = new FormData();
  form.append("file", blob, name);
  let resp, body;
  try {
    resp = await fetch("/predict", { method: "POST", body: form });
    body = await resp.json();
  } catch (err) {
    setStatus("");
    showError("The server did not answer (" + err + ").");
    return;
  }
  if (!resp.ok) {
    setStatus("");
    showError(body.error || ("The server answered HTTP " + resp.status + "."));
    return;
  }
  let picture;
  try {
    picture = await decodeForDisplay(blob);
  } catch (err) {
    picture = null;
  }
  render(picture, body);
  const faces = body.rows.filter((r) => r.face !== null).length;
  setStatus(faces === 0 ? (body.rows[0] && body.rows[0].error ? "No face: " + body.rows[0].error : "No face found.")
    : faces + (faces === 1 ? " face" : " faces") + " in " + name + " (" + Math.round(body.elapsed_ms) + " ms).");
  window.ferkitLast = body;
  document.body.dataset.state = "done";
}

function faceColour(row) { return row.abstained ? UNCERTAIN : COLOURS[row.face % COLOURS.length]; }

function render(picture, body) {
  const canvas = $("view");
  const w = body.image.width, h = body.image.height;
  const scale = Math.min(1, 760 / w);
  canvas.width = Math.round(w * scale);
  canvas.height = Math.round(h * scale);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (picture) ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
  canvas.dataset.scale = String(scale);
  const lw = Math.max(2, Math.round(canvas.width / 250));
  const font = Math.max(12, Math.round(canvas.width / 45));
  for (const row of body.rows) {
    if (!row.box) continue;
    const [x1, y1, x2, y2] = row.box.map((v) => v * scale);
    const colour = faceColour(row);
    ctx.lineWidth = lw;
    ctx.strokeStyle = colour;
    ctx.setLineDash(row.abstained ? [3 * lw, 2 * lw] : []);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.setLineDash([]);
    const text = (row.face + 1) + " " + (row.abstained ? "uncertain (" + row.label + ")" : row.label)
      + " " + percent(row.confidence);
    ctx.font = "600 " + font + "px system-ui, sans-serif";
    const tw = ctx.measureText(text).width + 8;
    const ty = y1 - font - 6 >= 0 ? y1 - font - 6 : y1;
    ctx.fillStyle = colour;
    ctx.fillRect(x1 - lw / 2, ty, tw, font + 6);
    ctx.fillStyle = "#fff";
    ctx.textBaseline = "top";
    ctx.fillText(text, x1 + 4 - lw / 2, ty + 3);
  }
  renderFaces(body);
  $("result").hidden = false;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderFaces(body) {
  const list = $("faces");
  list.replaceChildren();
  for (const row of body.rows) {
    if (row.face === null) {
      list.append(el("div", "face", row.error || "No face found."));
      continue;
    }
    const card = el("article", "face" + (row.abstained ? " uncertain" : ""));
    card.style.setProperty("--c", faceColour(row));
    const title = el("h2", null, "Face " + (row.face + 1) + ": ");
    title.append(el("span", "label", row.label));
    if (row.abstained) title.append(el("span", "badge", "uncertain"));
    card.append(title);
    const unc = row.uncertainty == null ? "n/a" : row.uncertainty.toFixed(3);
    card.append(el("div", "meta", "confidence " + percent(row.confidence) + " · uncertainty " + unc));
    const chart = el("div", "chart");
    const entries = Object.entries(row.probs || {});
    for (const [name, p] of entries) {
      chart.append(el("span", "cls", name));
      const track = el("div", "track");
      const bar = el("div", "bar" + (name === row.label ? " top" : ""));
      bar.style.width = (100 * p).toFixed(2) + "%";
      bar.dataset.cls = name;
      bar.dataset.p = String(p);
      track.append(bar);
      chart.append(track, el("span", "pct", percent(p)));
    }
    card.append(chart);
    list.append(card);
  }
}

function setUpFilePicking() {
  const drop = $("drop"), input = $("file");
  input.addEventListener("change", () => { if (input.files[0]) send(input.files[0], input.files[0].name); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const f = e.dataTransfer.files[0];
    if (f) send(f, f.name);
  });
}

function setUpCamera() {
  const start = $("camera-start"), capture = $("camera-capture"), stop = $("camera-stop"), video = $("video");
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
    start.disabled = true;
    $("camera-note").textContent = "The webcam needs a browser that allows it (HTTPS or localhost).";
    return;
  }
  const toggle = (on) => { start.hidden = on; capture.hidden = !on; stop.hidden = !on; video.hidden = !on; };
  start.addEventListener("click", async () => {
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      video.srcObject = state.stream;
      toggle(true);
      showError("");
    } catch (err) {
      showError("The webcam could not be opened (" + err.name + ").");
    }
  });
  capture.addEventListener("click", () => {
    const c = document.createElement("canvas");
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    c.toBlob((blob) => send(blob, "webcam.jpg"), "image/jpeg", 0.92);
  });
  stop.addEventListener("click", () => {
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    state.stream = null;
    toggle(false);
  });
}

setUpFilePicking();
setUpCamera();
loadModelInfo();
