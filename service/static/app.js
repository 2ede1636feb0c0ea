// motion-serve's page: plain JS, no framework, no request to any other site.
// Every API call is relative to the page, so the page also works behind a path prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                 "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const KEY_STORE = "motion-serve-api-key";

const state = {
  file: null,
  key: sessionStorage.getItem(KEY_STORE) || "",
  labels: [],        // the selected model's labels, for stable colors
  paths: new Set(),  // endpoints this server offers (from openapi.json)
  speech: null,      // the speech model as /v1/models lists it
  busy: false,
};

// ------------------------------------------------------------------ HTTP

class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && problem.detail ? problem.detail : "no detail given";
    const title = problem && problem.title ? problem.title : "Error";
    super(`${title} (${status}): ${detail}`);
    this.status = status;
  }
}

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: authHeaders() });
  } catch (err) {
    throw new Error(`the server could not be reached (${err.message})`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// POST the file as multipart/form-data with upload progress (fetch has no upload events).
function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total, false); };
    xhr.upload.onload = () => onProgress(1, true);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON: reported below */ }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new ApiError(xhr.status, body || { detail: xhr.responseText.slice(0, 300) }));
    };
    xhr.onerror = () => reject(new Error("the upload failed: the server could not be reached"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// ------------------------------------------------------------------ status

let ticker = null;

function setStatus(text, fraction) {
  const bar = $("progress");
  bar.hidden = fraction === undefined;
  if (fraction === null) bar.removeAttribute("value"); // indeterminate: working
  else if (fraction !== undefined) bar.value = fraction;
  $("status-text").textContent = text;
}

function working(what) {
  const start = performance.now();
  clearInterval(ticker);
  const show = () => setStatus(`${what} ${((performance.now() - start) / 1000).toFixed(1)} s`, null);
  show();
  ticker = setInterval(show, 100);
}

function idle(text) {
  clearInterval(ticker);
  setStatus(text);
}

function showError(err) {
  const box = $("error");
  box.textContent = err.message;
  box.hidden = false;
}

async function call(what, path) {
  const body = await upload(path, state.file, (fraction, done) => {
    if (done) working(`${what}: working…`);
    else setStatus(`${what}: uploading ${Math.round(fraction * 100)}%`, fraction);
  });
  clearInterval(ticker);
  return body;
}

// ------------------------------------------------------------------ models and key

async function loadModels() {
  let answer;
  try {
    answer = await getJSON("v1/models");
  } catch (err) {
    if (err.status === 401) {
      $("auth").hidden = false;
      $("input").hidden = true;
      if (state.key) showError(err);
      $("api-key").focus();
      return;
    }
    showError(err);
    return;
  }
  $("auth").hidden = true;
  $("input").hidden = false;
  $("error").hidden = true;
  const select = $("model");
  select.replaceChildren();
  for (const m of answer.models) {
    const option = new Option(`${m.name} (v${m.version}, ${m.labels.length} labels)`, m.name);
    option.dataset.labels = JSON.stringify(m.labels);
    if (m.default) option.selected = true;
    select.append(option);
  }
  // The speech model is listed with the others; when it cannot serve (not installed, turned
  // off) the page says why instead of calling /transcribe for a 503.
  const speech = (answer.auxiliary || []).find((m) => m.kind === "speech");
  state.speech = speech ? { ready: speech.ready, error: speech.error } : null;
  updateRunButton();
}

async function loadPaths() {
  // openapi.json is public and tells which endpoints exist (e.g. /transcribe), so the page
  // never has to probe for them and log a 404.
  try {
    const spec = await getJSON("openapi.json");
    state.paths = new Set(Object.keys(spec.paths || {}));
  } catch {
    state.paths = new Set(["/classify", "/summarize"]);
  }
}

function selectedLabels() {
  const option = $("model").selectedOptions[0];
  return option ? JSON.parse(option.dataset.labels) : [];
}

function colorOf(label) {
  const i = state.labels.indexOf(label);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

// ------------------------------------------------------------------ file choice

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  $("file-name").textContent = `${file.name} · ${(file.size / 1e6).toFixed(2)} MB`;
  const video = $("preview");
  if (video.src) URL.revokeObjectURL(video.src);
  video.src = URL.createObjectURL(file);
  updateRunButton();
}

function updateRunButton() {
  $("run").disabled = state.busy || !state.file || !$("model").value;
}

// ------------------------------------------------------------------ drawing helpers

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function fmtTime(s) {
  return s >= 60 ? `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}` : `${s.toFixed(2)} s`;
}

// A horizontal bar of spans over 0..duration, e.g. the timeline or the shots.
function drawSpans(svg, duration, spans, marks) {
  const width = Math.max(svg.parentElement.clientWidth, 300);
  const height = 64;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const x = (t) => (Math.min(Math.max(t, 0), duration) / duration) * (width - 2) + 1;
  for (const span of spans) {
    const x0 = x(span.start), x1 = x(span.end);
    const g = svgEl("g", { class: "span" });
    g.append(svgEl("rect", { x: x0, y: 4, width: Math.max(x1 - x0 - 1, 1), height: 30, fill: span.color, rx: 3 }));
    g.append(svgEl("title", {}, span.title));
    if (x1 - x0 > 12 + 7 * span.text.length) g.append(svgEl("text", { x: x0 + 6, y: 24, class: "span-label" }, span.text));
    svg.append(g);
  }
  for (const t of marks || []) {
    svg.append(svgEl("path", { d: `M ${x(t)} 36 l -5 8 h 10 z`, class: "mark" }));
  }
  for (let i = 0; i <= 4; i++) {
    const t = (duration * i) / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg.append(svgEl("text", { x: x(t), y: 60, "text-anchor": anchor, class: "tick" }, fmtTime(t)));
  }
}

// ------------------------------------------------------------------ results

function showLabels(answer) {
  const list = $("labels");
  list.replaceChildren();
  for (const { label, score } of answer.labels) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "label-name";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "score-bar";
    const fill = document.createElement("span");
    fill.className = "score-fill";
    fill.style.width = `${(score * 100).toFixed(1)}%`;
    fill.style.background = colorOf(label);
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "score";
    value.textContent = score.toFixed(3);
    li.append(name, bar, value);
    list.append(li);
  }
  const v = answer.video;
  $("video-info").textContent =
    `${v.width}x${v.height}, ${fmtTime(v.duration_s)}, ${v.fps.toFixed(2)} fps, ${v.codec} · ` +
    `model ${answer.model.name} v${answer.model.version} · server ${answer.timings_ms.total.toFixed(0)} ms`;
  const domain = $("domain");
  domain.hidden = !answer.domain;
  if (answer.domain) {
    domain.textContent = answer.domain.in_domain
      ? `In the model's domain (distance ${answer.domain.distance.toFixed(2)} <= ${answer.domain.threshold.toFixed(2)}).`
      : `Outside the model's domain (distance ${answer.domain.distance.toFixed(2)} > ` +
        `${answer.domain.threshold.toFixed(2)}): do not trust these labels for this video.`;
  }
  $("labels-section").hidden = false;
}

const COLUMN = 56; // px per frame: the plot's bars sit right above their thumbnails

function showAttention(answer) {
  const frames = answer.frames;
  const keys = new Set(answer.keyframes);
  const inner = $("attention-inner");
  $("attention-section").hidden = false;
  const width = Math.max(inner.parentElement.clientWidth, frames.length * COLUMN);
  inner.style.width = `${width}px`;
  const col = width / frames.length;
  const height = 180, top = 22, bottom = 150;
  const peak = Math.max(...frames.map((f) => f.attention), 1e-9);
  const svg = $("attention-plot");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const y = (a) => bottom - (a / peak) * (bottom - top);
  const uniform = 1 / frames.length;
  svg.append(svgEl("line", { x1: 0, x2: width, y1: y(uniform), y2: y(uniform), class: "uniform" }));
  frames.forEach((f, i) => {
    const isKey = keys.has(f.index);
    const g = svgEl("g", { class: isKey ? "bar keyframe" : "bar", "data-index": f.index });
    g.append(svgEl("rect", {
      x: i * col + col * 0.15, y: y(f.attention), width: col * 0.7,
      height: Math.max(bottom - y(f.attention), 1), rx: 2,
    }));
    g.append(svgEl("title", {}, `frame ${f.index} at ${fmtTime(f.timestamp_s)}: attention ${f.attention.toFixed(4)}`));
    if (isKey) g.append(svgEl("text", { x: i * col + col / 2, y: y(f.attention) - 5, "text-anchor": "middle", class: "star" }, "★"));
    g.append(svgEl("text", { x: i * col + col / 2, y: bottom + 16, "text-anchor": "middle", class: "tick" }, f.timestamp_s.toFixed(2)));
    svg.append(g);
  });
  // Drawn after the bars so that it stays readable over them.
  svg.append(svgEl("text", { x: 4, y: y(uniform) - 4, class: "tick halo" }, "1/n (uniform)"));
  svg.append(svgEl("line", { x1: 0, x2: width, y1: bottom, y2: bottom, class: "axis" }));
  svg.append(svgEl("text", { x: width - 4, y: height - 2, "text-anchor": "end", class: "tick" }, "time (s)"));

  const strip = $("frames");
  strip.replaceChildren();
  strip.style.gridTemplateColumns = `repeat(${frames.length}, 1fr)`;
  const canvases = frames.map((f) => {
    const canvas = document.createElement("canvas");
    // The video's own shape (displayed size), so the frames are not letterboxed.
    canvas.width = 96;
    canvas.height = Math.round(Math.min(Math.max((96 * answer.video.height) / answer.video.width, 32), 170));
    canvas.className = keys.has(f.index) ? "thumb keyframe" : "thumb";
    canvas.title = `frame ${f.index} at ${fmtTime(f.timestamp_s)}`;
    strip.append(canvas);
    return canvas;
  });
  return drawThumbnails(frames.map((f) => f.timestamp_s), canvases);
}

function once(target, events, ms) {
  return new Promise((resolve) => {
    const done = (e) => { clearTimeout(timer); for (const ev of events) target.removeEventListener(ev, done); resolve(e ? e.type : "timeout"); };
    const timer = setTimeout(done, ms);
    for (const ev of events) target.addEventListener(ev, done);
  });
}

// The frames come from the file itself: the browser seeks its own <video> to each frame's
// timestamp and draws it. A format the browser cannot play gets a placeholder instead.
async function drawThumbnails(times, canvases) {
  const video = $("preview");
  if (video.readyState < 2) {
    const outcome = await once(video, ["loadeddata", "error"], 5000);
    if (outcome !== "loadeddata") return placeholders(canvases, "no preview");
  }
  for (let i = 0; i < times.length; i++) {
    // A hair past the frame's own timestamp, so rounding never lands on the frame before.
    video.currentTime = Math.min(times[i] + 1e-3, Math.max(video.duration - 1e-3, 0));
    if ((await once(video, ["seeked", "error"], 3000)) !== "seeked") return placeholders(canvases.slice(i), "no preview");
    const canvas = canvases[i];
    const scale = Math.min(canvas.width / video.videoWidth, canvas.height / video.videoHeight);
    const w = video.videoWidth * scale, h = video.videoHeight * scale;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(video, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
    canvas.dataset.drawn = "1";
  }
  return true;
}

function placeholders(canvases, text) {
  for (const canvas of canvases) {
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ddd";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#555";
    ctx.font = "11px sans-serif";
    ctx.fillText(text, 8, canvas.height / 2);
  }
  return false;
}

function showTimeline(answer) {
  const duration = answer.video.duration_s;
  $("timeline-section").hidden = false;
  drawSpans($("timeline"), duration, (answer.segments || []).map((s) => ({
    start: s.start_s, end: s.end_s, color: colorOf(s.labels[0].label),
    text: `${s.labels[0].label} ${s.labels[0].score.toFixed(2)}`,
    title: `${fmtTime(s.start_s)}–${fmtTime(s.end_s)}: ` + s.labels.map((l) => `${l.label} ${l.score.toFixed(3)}`).join(", "),
  })));
}

function showSummary(answer) {
  const duration = answer.video.duration_s;
  $("summary-section").hidden = false;
  drawSpans($("shots"), duration, answer.segments.map((s, i) => ({
    start: s.start_s, end: s.end_s, color: i % 2 ? "#9fb8d8" : "#c9d7ea",
    text: `shot ${i + 1}`, title: `shot ${i + 1}: ${fmtTime(s.start_s)}–${fmtTime(s.end_s)} (frames ${s.start_index}–${s.end_index})`,
  })), answer.keyframes.map((k) => k.timestamp_s));
  const cards = $("keyframes");
  cards.replaceChildren();
  for (const k of answer.keyframes) {
    const card = document.createElement("figure");
    card.className = "card";
    if (k.thumbnail) {
      const img = document.createElement("img");
      img.src = k.thumbnail;
      img.alt = `keyframe ${k.index}`;
      card.append(img);
    }
    const caption = document.createElement("figcaption");
    caption.textContent = `shot ${k.segment + 1} · frame ${k.index} · ${fmtTime(k.timestamp_s)} · score ${k.score.toFixed(2)}`;
    card.append(caption);
    cards.append(card);
  }
}

function showTranscript(answer, problem) {
  const box = $("transcript");
  box.replaceChildren();
  $("transcript-section").hidden = false;
  if (!answer) {
    box.append(Object.assign(document.createElement("p"), {
      className: "muted",
      textContent: problem ? `No transcript: ${problem}` : "This server has no /transcribe endpoint: no transcript.",
    }));
    return;
  }
  const media = answer.media || {};
  if (media.has_audio === false || !answer.segments || answer.segments.length === 0) {
    box.append(Object.assign(document.createElement("p"), {
      className: "muted", textContent: media.has_audio === false ? "The file has no audio track." : "No speech found.",
    }));
    return;
  }
  const list = document.createElement("dl");
  for (const s of answer.segments) {
    list.append(Object.assign(document.createElement("dt"), { textContent: `${fmtTime(s.start_s)}–${fmtTime(s.end_s)}` }));
    list.append(Object.assign(document.createElement("dd"), { textContent: s.text }));
  }
  if (answer.language) {
    box.append(Object.assign(document.createElement("p"), { className: "muted", textContent: `language: ${answer.language}` }));
  }
  box.append(list);
}

function clearResults() {
  for (const id of ["labels-section", "attention-section", "timeline-section", "summary-section", "transcript-section"]) {
    $(id).hidden = true;
  }
  $("error").hidden = true;
}

// ------------------------------------------------------------------ the one button

async function analyze() {
  if (!state.file || state.busy) return;
  state.busy = true;
  updateRunButton();
  clearResults();
  document.body.dataset.state = "working";
  const model = encodeURIComponent($("model").value);
  state.labels = selectedLabels();
  const started = performance.now();
  const elapsed = () => ((performance.now() - started) / 1000).toFixed(1);
  try {
    const classified = await call("Labels", `classify?segments=true&top_k=5&model=${model}`);
    showLabels(classified);
    showTimeline(classified);
    const thumbnails = showAttention(classified);
    const labelsAfter = elapsed();
    const summary = await call("Shots", `summarize?thumbnails=true&max_keyframes=8&model=${model}`);
    showSummary(summary);
    if (state.paths.has("/transcribe") && state.speech && !state.speech.ready) {
      showTranscript(null, `the server's speech model is not available (${state.speech.error || "not ready"})`);
    } else if (state.paths.has("/transcribe")) {
      try {
        showTranscript(await call("Transcript", "transcribe"));
      } catch (err) {
        // The transcript is one section among several: a server without a speech model
        // (503) or a file it cannot transcribe keeps the labels and shots on screen.
        if (err.status === 404) showTranscript(null);
        else if (err.status === 401) throw err;
        else showTranscript(null, err.message);
      }
    } else {
      showTranscript(null);
    }
    await thumbnails;
    idle(`Done in ${elapsed()} s (labels after ${labelsAfter} s).`);
    document.body.dataset.state = "done";
  } catch (err) {
    idle(`Failed after ${elapsed()} s.`);
    showError(err);
    document.body.dataset.state = "error";
  } finally {
    state.busy = false;
    updateRunButton();
  }
}

// ------------------------------------------------------------------ wiring

function wire() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  $("model").addEventListener("change", updateRunButton);
  $("run").addEventListener("click", analyze);
  $("auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem(KEY_STORE, state.key);
    loadModels();
  });
}

wire();
Promise.all([loadPaths(), loadModels()]).then(() => { document.body.dataset.ready = "1"; });
