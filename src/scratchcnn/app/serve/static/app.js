// scratchcnn serve: the page's script. Plain JavaScript, no build step, no library.
// It talks to the JSON endpoints of scratchcnn/serve/app.py (documented in docs/serve.md).
"use strict";

const $ = (id) => document.getElementById(id);
let classNames = [];

function showError(err) { $("status").textContent = err ? String(err.message || err) : ""; }

// The JSON answer of a fetch() response, or an Error carrying the server's "detail" message.
async function answer(r) {
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON: keep the status text */ }
  if (!r.ok || body === null) throw new Error((body && body.detail) || `${r.status} ${r.statusText}`);
  return body;
}

async function getJSON(url) { return answer(await fetch(url)); }

// POST an image (a Blob or File) as multipart/form-data, field "file" (and any `fields`).
async function postImage(url, blob, center, fields = {}) {
  const form = new FormData();
  form.append("file", blob, blob.name || "drawing.png");
  form.append("center", center ? "1" : "0");
  for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  return answer(await fetch(url, { method: "POST", body: form }));
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---- prediction: a bar per class --------------------------------------------
function showPrediction(p) {
  const box = $("probabilities");
  box.replaceChildren();
  p.probabilities.forEach((prob, k) => {
    const track = el("div", { class: "bar-track" });
    const bar = el("div", { class: k === p.top ? "bar best" : "bar", "data-class": p.class_names[k] });
    bar.style.width = (100 * prob).toFixed(1) + "%";
    track.append(bar);
    const parts = [el("span", { class: "bar-label" }, p.class_names[k]), track,
                   el("span", { class: "bar-value" }, (100 * prob).toFixed(1) + "%")];
    for (const part of parts) {       // a click on a class's row explains that class
      part.dataset.k = String(k);
      part.title = `why ${p.class_names[k]}? (saliency and Grad-CAM for this class)`;
      part.addEventListener("click", () => explainClass(k));
    }
    box.append(...parts);
  });
  markExplained();
  $("top-class").textContent = `${p.class_names[p.top]} (${(100 * p.probabilities[p.top]).toFixed(1)}%)`;
  const img = $("model-input");
  img.src = p.input_image;
  img.hidden = false;
}

function showActivations(a) {
  const box = $("feature-maps");
  box.replaceChildren();
  for (const layer of a.layers) {
    const fig = el("figure", { class: "feature-map" });
    const img = el("img", { alt: `feature maps of layer ${layer.index}` });
    img.src = layer.image;
    const more = layer.shown < layer.shape[0] ? ` (first ${layer.shown} of ${layer.shape[0]} maps)` : "";
    fig.append(el("figcaption", {}, `layer ${layer.index}: ${layer.layer} → (${layer.shape.join(", ")})${more}`),
               img);
    box.append(fig);
  }
  if (!a.layers.length) box.append(el("p", { class: "muted" }, "this model has no conv or pooling layer"));
}

// ---- why: saliency and Grad-CAM for the predicted class or a clicked one ------------
let current = null, explained = null, explainId = 0;
function markExplained() {
  for (const bar of document.querySelectorAll("#probabilities .bar-track")) {
    bar.classList.toggle("explained", explained !== null && bar.dataset.k === String(explained));
  }
}

function showExplanation(e) {
  explained = e.class;
  const put = (id, part) => {
    const img = $(id);
    if (part) { img.src = part.image; img.hidden = false; } else { img.hidden = true; }
  };
  put("saliency", e.saliency);
  put("grad-cam", e.grad_cam);
  $("explain-class").textContent = `${e.class_name} (${(100 * e.probability).toFixed(1)}%` +
    (e.class === e.top ? ", the prediction)" : ")");
  $("grad-cam-note").textContent = e.grad_cam
    ? `Grad-CAM on layer ${e.grad_cam.layer}: ${e.grad_cam.layer_name} (its ${e.grad_cam.shape.join(" × ")} maps, upsampled)`
    : "this model has no conv layer: no Grad-CAM";
  markExplained();
  document.body.dataset.explained = String(e.class);
  document.body.dataset.explanations = String(Number(document.body.dataset.explanations || 0) + 1);
}

// Ask /api/explain about class k (a click on its bar) for the current input.
async function explainClass(k) {
  if (!current) return;
  const id = ++explainId;
  try {
    const e = await postImage("/api/explain", current.blob, current.center, { class: k });
    if (id === explainId) { showExplanation(e); showError(null); }
  } catch (err) {
    if (id === explainId) showError(err);
  }
}

// Send one input to /api/predict and, when `full`, to /api/activations and /api/explain (the
// predicted class) too. Answers to an input older than the latest one sent are dropped (they
// may arrive late).
let busy = false, latest = 0, shown = 0;
async function analyse(blob, center, full) {
  const id = ++latest;
  busy = true;
  document.body.dataset.busy = "1";
  if (full) { current = { blob, center }; explainId++; }
  try {
    const [p, a, e] = await Promise.all([postImage("/api/predict", blob, center),
                                         full ? postImage("/api/activations", blob, center) : null,
                                         full ? postImage("/api/explain", blob, center) : null]);
    if (id !== latest) return;
    showPrediction(p);
    if (a) showActivations(a);
    if (e) showExplanation(e);
    showError(null);
    document.body.dataset.results = String(++shown);
  } catch (err) {
    if (id === latest) showError(err);
  } finally {
    if (id === latest) { busy = false; document.body.dataset.busy = "0"; }
  }
}

// ---- the drawing canvas (pointer events: mouse, pen and touch alike) ----------
function setUpCanvas() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let drawing = false, last = null, lastSent = 0;
  const pos = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const send = (full) => new Promise((resolve) => canvas.toBlob(resolve, "image/png"))
    .then((blob) => analyse(blob, true, full));
  const line = (a, b) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = Number($("brush").value);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
  };
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true; last = pos(e); line(last, last);
    canvas.setPointerCapture(e.pointerId);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = pos(e); line(last, p); last = p;
    const now = performance.now();
    if (!busy && now - lastSent > 120) { lastSent = now; send(false); }   // live update while drawing
  });
  const end = () => { if (drawing) { drawing = false; send(true); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    clear();
    $("probabilities").replaceChildren();
    $("top-class").textContent = "–";
  });
  $("draw-area").hidden = false;
}

// ---- summary, filters, training run ----------------------------------------
function showSummary(s) {
  const t = $("summary");
  t.replaceChildren();
  const head = el("tr");
  for (const h of ["#", "layer", "output shape", "parameters"]) head.append(el("th", {}, h));
  t.append(head);
  for (const r of s.layers) {
    const depth = r.depth || 0;                     // layers inside a residual block: indented under it
    const tr = el("tr", depth ? { class: "nested" } : {});
    const name = el("td", {}, r.layer);
    if (depth) name.style.paddingLeft = `${0.6 + 1.2 * depth}rem`;
    tr.append(el("td", {}, r.name ?? r.index), name, el("td", {}, `(${r.output_shape.join(", ")})`),
              el("td", { class: "num" }, r.params.toLocaleString()));
    t.append(tr);
  }
  $("summary-totals").textContent = `input (${s.input_shape.join(", ")}); ` +
    `${s.total_params.toLocaleString()} parameters (${s.trainable_params.toLocaleString()} trainable); ` +
    `${s.macs.toLocaleString()} multiply-adds per image`;
}

function showFilters(f) {
  if (!f.image) { $("filters-note").textContent = "this model has no conv layer"; return; }
  const img = $("filters");
  img.src = f.image;
  img.hidden = false;
  const more = f.shown < f.shape[0] ? `, first ${f.shown} shown` : "";
  $("filters-note").textContent = `${f.shape[0]} filters of ${f.shape[1]} × ${f.shape[2]} × ${f.shape[3]}${more}; ` +
    "grey is zero, light positive, dark negative";
}

// A line chart of several series (arrays of numbers, null for missing) on a canvas.
function lineChart(canvas, title, series) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 48, R = 10, T = 26, B = 30;
  ctx.clearRect(0, 0, W, H);
  const values = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
  ctx.fillStyle = "#1d2330"; ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(title, L, 16);
  if (!values.length) return;
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) { hi += 0.5; lo -= 0.5; }
  const n = Math.max(...series.map((s) => s.values.length));
  const x = (i) => L + (n > 1 ? i / (n - 1) : 0.5) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  ctx.strokeStyle = "#d1d5db"; ctx.fillStyle = "#6b7280"; ctx.font = "11px system-ui, sans-serif";
  for (let k = 0; k <= 4; k++) {
    const v = lo + (hi - lo) * k / 4;
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
    ctx.fillText(v.toPrecision(3), 4, y(v) + 4);
  }
  ctx.fillText("epoch 1", L, H - 10);
  ctx.fillText(`epoch ${n}`, W - R - 50, H - 10);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { started = false; return; }
      if (started) ctx.lineTo(x(i), y(v)); else { ctx.moveTo(x(i), y(v)); started = true; }
    });
    ctx.stroke();
    ctx.fillStyle = s.color; ctx.fillText(s.name, W - R - 150 + 75 * k, 16);
  });
}

function showRun(run) {
  if (!run.available) return;
  $("run-card").hidden = false;
  const h = (run.history && run.history.history) || {};
  const get = (k) => h[k] || [];
  lineChart($("loss-chart"), "loss", [{ name: "train", values: get("loss"), color: "#2563eb" },
                                      { name: "validation", values: get("val_loss"), color: "#ea580c" }]);
  lineChart($("accuracy-chart"), "accuracy", [{ name: "train", values: get("accuracy"), color: "#2563eb" },
                                              { name: "validation", values: get("val_accuracy"), color: "#ea580c" }]);
  const parts = [];
  if (run.test.accuracy !== undefined) parts.push(`test accuracy ${(100 * run.test.accuracy).toFixed(2)}%`);
  if (run.test.test_loss !== undefined) parts.push(`test loss ${run.test.test_loss.toFixed(4)}`);
  $("test-metrics").textContent = parts.join(", ");
  const t = $("confusion");
  t.replaceChildren();
  if (!run.confusion_matrix) { t.append(el("caption", { class: "muted" }, "no metrics.json in the run directory")); return; }
  const names = run.class_names;
  const head = el("tr");
  head.append(el("th"));
  names.forEach((n) => head.append(el("th", {}, n)));
  t.append(head);
  run.confusion_matrix.forEach((row, i) => {
    const tr = el("tr");
    tr.append(el("th", {}, names[i] !== undefined ? names[i] : i));
    const max = Math.max(1, ...row);
    row.forEach((v, j) => {
      const td = el("td", {}, v);
      const alpha = v / max;
      td.style.background = i === j ? `rgba(37,99,235,${alpha})` : `rgba(234,88,12,${alpha})`;
      if (alpha > 0.6) td.style.color = "#fff";
      tr.append(td);
    });
    t.append(tr);
  });
}

async function main() {
  try {
    const info = await getJSON("/api/info");
    classNames = info.class_names;
    $("model-info").textContent = [info.model_file, info.dataset ? `data set ${info.dataset}` : "no data set recorded",
      `input (${info.input_shape.join(", ")})`, `${classNames.length} classes`].filter(Boolean).join(" · ");
    if (info.drawable) setUpCanvas();
    $("upload").addEventListener("change", (e) => {
      const file = e.target.files[0];
      if (file) analyse(file, false, true);
    });
    const [summary, filters, run] = await Promise.all(
      [getJSON("/api/summary"), getJSON("/api/filters"), getJSON("/api/run")]);
    showSummary(summary);
    showFilters(filters);
    showRun(run);
    document.body.dataset.ready = "1";
  } catch (err) {
    showError(err);
  }
}

main();
