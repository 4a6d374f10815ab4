// The web console: plain JavaScript on the gateway's own API (no framework, no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = { FAKE: "#c92a2a", REAL: "#2b8a3e", NO_FACE: "#868e96", RAW: "#5c7cfa", UNCERTAIN: "#e67700" };
const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Errors: the gateway answers {error, detail}; show the sentence.
function errorText(status, body) {
  let detail = "";
  try { detail = JSON.parse(body).detail; } catch (_) { detail = body; }
  if (detail) return typeof detail === "string" ? detail : JSON.stringify(detail);  // the gateway's sentence says it all
  return { 413: "Too large", 415: "Not supported", 422: "Not accepted", 501: "Not available",
    503: "Detector busy or down, try again shortly", 504: "Timed out" }[status] || `HTTP ${status}`;
}
function showError(id, message) { const el = $(id); el.textContent = message || ""; el.hidden = !message; }

// API key: when the gateway requires one (/health says so), the page asks for it once and keeps
// it for this tab only (sessionStorage, gone when the tab closes); a refused key is forgotten
// and asked for again. It goes in the X-API-Key header; a browser's WebSocket cannot send
// headers, so the socket gets it as ?api_key= (a proxy may log that URL: see docs/security.md).
const KEY_STORE = "deepfake-api-key";
const apiKey = () => sessionStorage.getItem(KEY_STORE) || "";
const keyHeaders = () => (apiKey() ? { "X-API-Key": apiKey() } : {});
function askForKey(message) {
  $("key-form").hidden = false;
  showError("key-error", message);
  $("key-input").focus();
}
function keyRefused() {
  sessionStorage.removeItem(KEY_STORE);
  askForKey("The gateway refused the API key: enter a valid one.");
}
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("key-input").value = "";
  $("key-form").hidden = true;
  showError("key-error", "");
});

// POST a form; NDJSON lines are handed to onLine as they arrive (XHR: upload progress too).
function post(url, form, { onUpload, onLine } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    let seen = 0;
    const drain = () => {
      let nl;
      while ((nl = xhr.responseText.indexOf("\n", seen)) >= 0) {
        const line = xhr.responseText.slice(seen, nl);
        seen = nl + 1;
        if (line.trim()) onLine(JSON.parse(line));
      }
    };
    xhr.open("POST", url);
    if (apiKey()) xhr.setRequestHeader("X-API-Key", apiKey());
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    if (onLine) xhr.onprogress = () => xhr.status === 200 && drain();
    xhr.onload = () => {
      if (xhr.status === 401) keyRefused();
      if (xhr.status < 200 || xhr.status > 299) return reject(new Error(errorText(xhr.status, xhr.responseText)));
      if (onLine) { drain(); resolve(); } else resolve(JSON.parse(xhr.responseText));
    };
    xhr.onerror = () => reject(new Error("Network error: is the gateway running?"));
    xhr.send(form);
  });
}

// Tabs
document.querySelectorAll("nav button").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll("nav button").forEach((t) => t.setAttribute("aria-selected", t === tab));
  document.querySelectorAll("main section").forEach((s) => { s.hidden = s.id !== `tab-${tab.dataset.tab}`; });
}));

// Drag and drop onto any drop zone fills its file input.
document.querySelectorAll(".drop").forEach((zone) => {
  const input = zone.querySelector("input");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    input.files = e.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });
});

// Health
let jobLimits = null;  // from /health: above these a video or a batch is sent as a job (null: no jobs)
async function checkHealth() {
  const pill = $("health");
  try {
    const response = await fetch("/health", { headers: keyHeaders() });
    const health = await response.json();
    if (health.api_key_required && !apiKey() && $("key-form").hidden) askForKey("");
    pill.textContent = response.ok ? `ready · ${health.models_loaded.length} models` : "detector not ready";
    pill.className = `pill ${response.ok ? "ok" : "bad"}`;
    $("untrained").hidden = !health.untrained;
    jobLimits = health.jobs || null;
    $("video-stride-label").hidden = !jobLimits;
  } catch (_) {
    pill.textContent = "gateway unreachable"; pill.className = "pill bad";
  }
}
checkHealth();
setInterval(checkHealth, 15000);

// Image

function verdict(id, prediction) {
  const el = $(id);
  el.textContent = prediction === "NO_FACE" ? "NO FACE" : prediction;
  el.className = `verdict ${prediction}`;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = src;
  });
}

// The photo with each face's box and score; or the server's heatmap overlay (its own boxes drawn in).
function drawImage(canvas, img, faces, threshold) {
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  if (!faces) return;
  const width = Math.max(2, Math.round(img.naturalWidth / 250));
  ctx.font = `${Math.max(12, width * 7)}px system-ui, sans-serif`;
  faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box;
    const color = COLORS[face.verdict] || (face.fake_probability > threshold ? COLORS.FAKE : COLORS.REAL);
    ctx.lineWidth = width; ctx.strokeStyle = color; ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = `#${i + 1} ${fmt(face.fake_probability, 2)}`;
    const h = width * 9;
    ctx.fillStyle = color; ctx.fillRect(x1, Math.max(0, y1 - h), ctx.measureText(label).width + width * 3, h);
    ctx.fillStyle = "#fff"; ctx.fillText(label, x1 + width * 1.5, Math.max(h, y1) - width * 2);
  });
}

// Bars carry their numbers as data attributes; styleBars sets the widths through the DOM
// (the Content-Security-Policy allows no inline style attributes).
function bar(p, threshold, color) {
  if (p === null || p === undefined) return "";
  const tick = threshold === null ? "" : "<s></s>";
  const t = threshold === null ? "" : ` data-t="${Number(threshold)}"`;
  return `<div class="bar" data-p="${Number(p)}"${t} data-c="${esc(color)}"><b></b>${tick}</div>`;
}

function styleBars(root) {
  root.querySelectorAll(".bar[data-p]").forEach((el) => {
    const fill = el.querySelector("b");
    fill.style.width = `${(Number(el.dataset.p) * 100).toFixed(1)}%`;
    fill.style.background = el.dataset.c;
    const tick = el.querySelector("s");
    if (tick) tick.style.left = `${(Number(el.dataset.t) * 100).toFixed(1)}%`;
  });
}

function drawConsensus(result) {
  const { threshold, weights, seed_keys: served, calibrated } = result.ensemble;
  const total = Object.values(weights).reduce((a, b) => a + b, 0) || 1;
  const rows = Object.entries(result.model_predictions).map(([key, m]) => {
    const name = served[key] || key;  // model_predictions has the seed's keys (effort), weights the served names
    // Calibrated: the threshold applies to the calibrated probability, not to a model's raw score.
    const color = calibrated ? COLORS.RAW : COLORS[m.prediction];
    return `<tr><td>${esc(name)}</td><td>${bar(m.fake_prob, calibrated ? null : threshold, color)}</td>` +
      `<td class="num">${fmt(m.fake_prob)}</td><td class="num">${fmt((weights[name] || 0) / total, 2)}</td></tr>`;
  });
  const ensembleColor = COLORS[result.verdict || result.prediction];
  $("consensus").innerHTML =
    `<tr><th>model</th><th>p(fake)</th><th class="num"></th><th class="num">weight</th></tr>${rows.join("")}` +
    `<tr class="ensemble"><td>${calibrated ? "calibrated probability" : "ensemble"}</td><td>${bar(result.fake_probability, threshold, ensembleColor)}</td>` +
    `<td class="num">${fmt(result.fake_probability)}</td><td class="num">1.00</td></tr>`;
  styleBars($("consensus"));
  $("consensus-note").textContent = !result.num_faces ? "No face was found, so nothing was judged (never read as REAL)."
    : calibrated
    ? `FAKE above the threshold ${fmt(threshold, 2)} (the black tick) on the calibrated probability: the weighted ` +
      `mean per face mapped by the served calibration, then the ${result.ensemble.image_score} over faces. ` +
      "Model rows: raw scores of each model's most-fake face, not comparable with the threshold."
    : `FAKE above the threshold ${fmt(threshold, 2)} (the black tick). Per model: its most-fake face; ` +
      `ensemble: weighted mean per face, then the ${result.ensemble.image_score} over faces.`;
  const band = result.ensemble.uncertain_band;
  if (band && result.num_faces) {
    $("consensus-note").textContent += ` UNCERTAIN from ${fmt(band.low, 2)} to ${fmt(band.high, 2)}: ` +
      "too close to the threshold for the models to tell (the served uncertain band).";
  }
}

// Out-of-scope flags, reported beside the verdict (deepfake_client.scope): never hidden, never merged.
const FLAG_TEXT = { strong_jpeg_compression: "strong JPEG compression", greyscale: "greyscale", upscaled: "upscaled",
  too_many_faces: "more faces than were judged", small_face: "small face" };
function flagsText(result) {
  const parts = (result.flags || []).map((f) => FLAG_TEXT[f] || f);
  (result.faces || []).forEach((face, i) => {
    if (face.flags && face.flags.length) parts.push(`face #${i + 1}: ${face.flags.map((f) => FLAG_TEXT[f] || f).join(", ")}`);
  });
  return parts.length ? `Outside what the models were trained on: ${parts.join("; ")}.` : "";
}

// Provenance: the file's C2PA Content Credentials, shown beside the verdict and never merged into it.
const PROVENANCE_STATES = { valid: "valid", untrusted: "untrusted signer", tampered: "tampered", none: "none", unreadable: "unreadable" };
function drawProvenance(p) {
  $("image-provenance").hidden = !p;
  $("provenance-badge").hidden = !p;
  if (!p) return;
  const badge = $("provenance-badge");
  badge.dataset.state = p.state;
  badge.className = `c2pa ${p.state}${p.ai ? " ai" : ""}`;
  badge.textContent = `C2PA: ${PROVENANCE_STATES[p.state] || p.state}` +
    (p.ai === "generated" ? " · declared AI-generated" : p.ai === "edited" ? " · declared AI-edited" : "");
  $("provenance-summary").textContent = p.summary;
  const fields = [["state", PROVENANCE_STATES[p.state] || p.state], ["signer", p.signer], ["issuer", p.issuer],
    ["made with", p.claim_generator], ["AI", p.ai ? `declared ${p.ai}` : (p.signer ? "none declared" : null)],
    ["source type", p.digital_source_types.map((t) => t.split("/").pop()).join(", ")], ["detail", p.detail]];
  $("provenance-fields").innerHTML = fields.filter(([, v]) => v)
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
}

async function judgeImage(file) {
  showError("image-error", "");
  const form = new FormData();
  form.append("file", file);
  form.append("generate_gradcam", $("image-gradcam").checked);
  $("image-summary").textContent = "judging…";
  let result;
  try {
    result = await post("/api/detect/image", form);
  } catch (error) {
    $("image-summary").textContent = "";
    $("image-result").hidden = true;
    return showError("image-error", error.message);
  }
  const url = URL.createObjectURL(file);
  const photo = await loadImage(url).catch(() => null);
  const heatmap = result.gradcam ? await loadImage(`data:image/png;base64,${result.gradcam}`) : null;
  $("image-result").hidden = false;
  verdict("image-verdict", result.verdict || result.prediction);
  $("image-flags").textContent = flagsText(result);
  $("image-flags").hidden = !$("image-flags").textContent;
  $("image-summary").textContent = result.num_faces
    ? `p(fake) ${fmt(result.fake_probability)} · confidence ${fmt(result.confidence)} · ` +
      `${result.num_faces} face${result.num_faces > 1 ? "s" : ""} · ${fmt(result.processing_time, 2)} s`
    : `no face found · ${fmt(result.processing_time, 2)} s`;
  const canvas = $("image-canvas");
  const redraw = () => {
    if (heatmap && $("heatmap-toggle").checked) drawImage(canvas, heatmap, null, 0);
    else if (photo) drawImage(canvas, photo, result.faces, result.ensemble.threshold);
  };
  $("heatmap-controls").hidden = !heatmap;
  $("heatmap-toggle").onchange = redraw;
  $("heatmap-note").hidden = !$("image-gradcam").checked || !!heatmap;
  $("heatmap-note").textContent = "No heatmap was returned.";
  canvas.dataset.faces = result.num_faces;
  redraw();
  drawConsensus(result);
  drawProvenance(result.provenance);
}
$("image-canvas").addEventListener("click", () => {
  const enlarged = $("image-canvas").classList.toggle("enlarged");
  $("image-canvas").title = enlarged ? "tap to close" : "tap to enlarge";
});
$("image-file").addEventListener("change", (e) => e.target.files[0] && judgeImage(e.target.files[0]));


// Jobs: a large video or batch goes to /api/jobs (202 with an id) and is polled for progress and
// the results so far (the first 1000 items are shown).
const JOB_ENDED = ["done", "failed", "cancelled"];
async function followJob(id, onStatus) {
  for (;;) {
    const response = await fetch(`/api/jobs/${encodeURIComponent(id)}?limit=1000`, { headers: keyHeaders() });
    const body = await response.text();
    if (response.status === 401) keyRefused();
    if (!response.ok) throw new Error(errorText(response.status, body));
    const job = JSON.parse(body);
    onStatus(job);
    if (JOB_ENDED.includes(job.state)) return job;
    await new Promise((done) => setTimeout(done, 1000));
  }
}

// A zip archive (stored, not compressed: photos are compressed already) of the files, for a batch job.
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
async function zipFiles(files) {
  const parts = [], central = [];
  let offset = 0;
  const used = new Set();
  for (const file of files) {
    let name = file.name.replace(/[\\/]/g, "_") || "image";
    while (used.has(name)) name = `_${name}`;
    used.add(name);
    const nameBytes = new TextEncoder().encode(name);
    const data = new Uint8Array(await file.arrayBuffer());
    const crc = crc32(data);
    const header = (signature, extra) => {
      const view = new DataView(new ArrayBuffer(extra ? 46 : 30));
      let at = 0;
      const u32 = (v) => { view.setUint32(at, v, true); at += 4; };
      const u16 = (v) => { view.setUint16(at, v, true); at += 2; };
      u32(signature); if (extra) u16(20);
      u16(20); u16(0x0800); u16(0); u16(0); u16(0x21);  // version, UTF-8 names, stored, time, date
      u32(crc); u32(data.length); u32(data.length); u16(nameBytes.length); u16(0);
      if (extra) { u16(0); u16(0); u16(0); u32(0); u32(offset); }
      return new Uint8Array(view.buffer);
    };
    const local = header(0x04034b50, false);
    central.push(header(0x02014b50, true), nameBytes);
    parts.push(local, nameBytes, data);
    offset += local.length + nameBytes.length + data.length;
  }
  const size = central.reduce((n, p) => n + p.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true); end.setUint16(10, files.length, true);
  end.setUint32(12, size, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, new Uint8Array(end.buffer)], { type: "application/zip" });
}

async function runBatchJob(files) {
  const progress = $("batch-progress");
  $("batch-count").textContent = `packing ${files.length} images…`;
  const form = new FormData();
  form.append("file", await zipFiles(files), "batch.zip");
  const job = await post("/api/jobs", form, {
    onUpload: (share) => { $("batch-count").textContent = `uploading ${Math.round(share * 100)}%`; },
  });
  const rows = (items) => items.map((i) => ({ filename: i.name, prediction: i.verdict, fake_probability: i.fake_probability,
    num_faces: i.num_faces, error: i.error, detail: i.detail }));
  const ended = await followJob(job.id, (status) => {
    progress.value = status.progress.fraction;
    $("batch-count").textContent = `job: ${status.progress.done} / ${status.progress.total} (${status.state})`;
    batchTable(rows(status.items));
  });
  if (ended.state !== "done") throw new Error(`the job ${ended.state}${ended.error ? `: ${ended.error}` : ""}`);
  const c = ended.result.counts;
  batchStats({ total: ended.result.items, fake_count: c.FAKE || 0, real_count: c.REAL || 0, no_face_count: c.NO_FACE || 0,
    error_count: c.ERROR || 0, average_confidence: null });
}

async function runVideoJob(file) {
  const progress = $("video-progress");
  const svg = $("timeline");
  const stride = Math.max(1, Number($("video-stride").value) || 1);
  const form = new FormData();
  form.append("file", file);
  form.append("stride", stride);
  const job = await post("/api/jobs", form, {
    onUpload: (share) => { $("video-count").textContent = `uploading ${Math.round(share * 100)}%`; },
  });
  const span = Math.max(job.total * stride - 1, 1);
  const draw = (items, threshold) => drawTimeline(svg, items.map((i) => ({ t: i.frame_index, p: i.fake_probability,
    label: i.verdict, title: `frame ${i.frame_index}: ${i.verdict || i.error} ${fmt(i.fake_probability)}` })), threshold,
  { span, axis: `frame ${span}` });
  const ended = await followJob(job.id, (status) => {
    progress.value = status.progress.fraction;
    $("video-count").textContent = `job: ${status.progress.done} / ${status.progress.total} frames (${status.state})`;
    draw(status.items, 0.5);
  });
  if (ended.state !== "done") throw new Error(`the job ${ended.state}${ended.error ? `: ${ended.error}` : ""}`);
  const r = ended.result;
  draw(ended.items, r.threshold ?? 0.5);
  verdict("video-verdict", r.verdict);
  $("video-verdict-line").hidden = false;
  $("video-summary").textContent = `p(fake) ${fmt(r.fake_probability)} (${r.aggregation}) · ` +
    `${r.frames_scored} of ${r.frame_count} frames (every ${r.stride}th), ${r.frames_with_face} with a face`;
}

// Batch

function batchStats(s) {
  const items = [["images", s.total], ["fake", s.fake_count], ["real", s.real_count], ["no face", s.no_face_count],
    ["uncertain", s.uncertain_count || 0], ["errors", s.error_count], ["avg. confidence", fmt(s.average_confidence)]];
  $("batch-stats").innerHTML = items.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("");
}

function batchRow(r) {
  const tag = r.error ? "ERROR" : (r.verdict || r.prediction);
  const detail = r.error ? esc(r.detail) : `${fmt(r.fake_probability)}`;
  return `<tr><td>${esc(r.filename)}</td><td class="tag ${tag}">${tag}</td><td class="num">${detail}</td>` +
    `<td class="num">${r.error ? "" : r.num_faces}</td></tr>`;
}

function batchTable(rows) {
  $("batch-results").innerHTML =
    `<tr><th>file</th><th>verdict</th><th class="num">p(fake)</th><th class="num">faces</th></tr>${rows.map(batchRow).join("")}`;
}

async function runBatch(files) {
  showError("batch-error", "");
  const progress = $("batch-progress");
  const rows = [];
  progress.value = 0;
  $("batch-count").textContent = `uploading ${files.length}…`;
  $("batch-results").innerHTML = "";
  $("batch-stats").innerHTML = "";
  if (jobLimits && files.length > jobLimits.batch_files) {
    try { await runBatchJob(files); } catch (error) { showError("batch-error", error.message); }
    return;
  }
  const form = new FormData();
  for (const f of files) form.append("files", f);
  try {
    await post("/api/detect/batch?stream=true", form, {
      onUpload: (share) => { $("batch-count").textContent = `uploading ${Math.round(share * 100)}%`; },
      onLine: (line) => {
        if (line.type === "progress") {
          progress.value = line.done / line.total;
          $("batch-count").textContent = `${line.done} / ${line.total}`;
          rows.push(line.result);
          batchTable(rows);
        } else if (line.type === "summary") {
          progress.value = 1;
          batchStats(line);
          rows.splice(0, rows.length, ...line.results);  // input order (the progress lines come as judged)
          batchTable(rows);
        } else if (line.type === "error") {
          $("batch-count").textContent = `failed after ${rows.length} / ${files.length}`;
          showError("batch-error", errorText(line.status, JSON.stringify(line)));
        }
      },
    });
  } catch (error) {
    $("batch-count").textContent = "failed";
    showError("batch-error", error.message);
  }
}
$("batch-files").addEventListener("change", (e) => e.target.files.length && runBatch([...e.target.files]));

// Video: the timeline grows as frames are judged.

function drawTimeline(svg, points, threshold, { height = 200, pad = 12, span, axis = "" } = {}) {
  const width = svg.clientWidth || 600;  // user units = pixels, so dots stay round
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = axis ? pad + 22 : pad;
  const x = (t) => left + ((width - left - pad) * t) / Math.max(span, 1e-9);
  const y = (p) => height - pad - (height - 2 * pad) * p;
  const labels = axis
    ? [[1, "1"], [threshold, fmt(threshold, 2)], [0, "0"]].map(([p, text]) =>
      `<text x="2" y="${y(p) + 4}" font-size="11" fill="#6c757d">${text}</text>`).join("") +
      `<text x="${width - pad}" y="${height - 1}" font-size="11" fill="#6c757d" text-anchor="end">${esc(axis)}</text>`
    : "";
  const judged = points.filter((p) => p.p !== null);
  const path = judged.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.p).toFixed(1)}`).join("");
  svg.innerHTML = labels +
    `<line x1="${left}" x2="${width - pad}" y1="${y(threshold)}" y2="${y(threshold)}" stroke="#212529" stroke-dasharray="6 4" stroke-width="1"/>` +
    `<path d="${path}" fill="none" stroke="#1c7ed6" stroke-width="2" vector-effect="non-scaling-stroke"/>` +
    points.map((p) => p.p === null
      ? `<circle class="point" cx="${x(p.t)}" cy="${height - 4}" r="3" fill="none" stroke="${COLORS.NO_FACE}"/>`
      : `<circle class="point" cx="${x(p.t)}" cy="${y(p.p)}" r="4" fill="${COLORS[p.label]}"><title>${p.title}</title></circle>`).join("");
}

async function runVideo(file) {
  showError("video-error", "");
  const progress = $("video-progress");
  const svg = $("timeline");
  const points = [];
  let span = 1, threshold = 0.5, fps = 0;
  const axisLabel = () => (fps ? `${fmt(span, 1)} s` : `frame ${span}`);  // seconds when the video says its rate
  progress.value = 0;
  svg.innerHTML = "";
  $("video-verdict-line").hidden = true;
  if (jobLimits && file.size > jobLimits.video_bytes) {
    try { await runVideoJob(file); } catch (error) { $("video-count").textContent = ""; showError("video-error", error.message); }
    return;
  }
  const form = new FormData();
  form.append("file", file);
  form.append("max_frames", $("video-frames").value);
  try {
    await post("/api/video/detect?stream=true", form, {
      onUpload: (share) => { $("video-count").textContent = `uploading ${Math.round(share * 100)}%`; },
      onLine: (line) => {
        if (line.type === "start") {
          fps = line.fps || 0;
          span = fps ? Math.max(line.total_frames - 1, 1) / fps : Math.max(line.total_frames - 1, 1);
          $("video-count").textContent = `0 / ${line.frames_to_process} frames`;
        } else if (line.type === "progress") {
          const f = line.frame_result;
          progress.value = line.done / line.total;
          $("video-count").textContent = `${line.done} / ${line.total} frames`;
          points.push({ t: fps && f.timestamp !== null ? f.timestamp : f.frame, p: f.fake_probability, label: f.prediction,
            title: `frame ${f.frame}${f.timestamp !== null ? ` (${fmt(f.timestamp, 2)} s)` : ""}: ${f.prediction} ${fmt(f.fake_probability)}` });
          points.sort((a, b) => a.t - b.t);
          drawTimeline(svg, points, threshold, { span, axis: axisLabel() });
        } else if (line.type === "result") {
          const o = line.overall_result, info = line.processing_info;
          threshold = o.threshold;
          progress.value = 1;
          drawTimeline(svg, points, threshold, { span, axis: axisLabel() });
          verdict("video-verdict", o.prediction);
          $("video-verdict-line").hidden = false;
          $("video-summary").textContent = `p(fake) ${fmt(o.fake_probability)} (${o.aggregation}) · fake frames ` +
            `${o.fake_frame_ratio === null ? "–" : Math.round(o.fake_frame_ratio * 100) + "%"} · ` +
            `${info.frames_processed} of ${info.total_frames} frames in ${fmt(info.processing_time, 1)} s`;
        } else if (line.type === "error") {
          showError("video-error", errorText(line.status, JSON.stringify(line)));
        }
      },
    });
  } catch (error) {
    $("video-count").textContent = "";
    showError("video-error", error.message);
  }
}
$("video-file").addEventListener("change", (e) => e.target.files[0] && runVideo(e.target.files[0]));

// Webcam: a frame every ~0.67 s, never more than one waiting for its answer.

const webcam = { stream: null, socket: null, timer: null, waiting: false, points: [], count: 0 };

function stopWebcam() {
  clearInterval(webcam.timer);
  if (webcam.socket) webcam.socket.close();
  if (webcam.stream) webcam.stream.getTracks().forEach((t) => t.stop());
  Object.assign(webcam, { stream: null, socket: null, timer: null, waiting: false });
  $("webcam-start").disabled = false; $("webcam-stop").disabled = true;
}

function sendFrame() {
  const video = $("webcam-video");
  if (webcam.waiting || !video.videoWidth || webcam.socket.readyState !== WebSocket.OPEN) return;
  const scale = Math.min(1, 640 / video.videoWidth);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  webcam.waiting = true;
  webcam.socket.send(canvas.toDataURL("image/jpeg", 0.85));
}

function onWebcamResult(event) {
  webcam.waiting = false;
  const r = JSON.parse(event.data);
  if (r.error) return showError("webcam-error", errorText(r.status, JSON.stringify(r)));
  showError("webcam-error", "");
  webcam.count += 1;
  verdict("webcam-verdict", r.verdict || r.prediction);
  $("webcam-summary").textContent = `p(fake) ${fmt(r.fake_probability)} · ${r.num_faces} face(s) · ` +
    `${fmt(r.processing_time, 2)} s · ${webcam.count} frames`;
  webcam.points.push({ t: webcam.count, p: r.fake_probability, label: r.prediction, title: `frame ${webcam.count}` });
  webcam.points = webcam.points.slice(-40);
  const first = webcam.points[0].t;
  drawTimeline($("webcam-chart"), webcam.points.map((p) => ({ ...p, t: p.t - first })), r.threshold,
    { height: 80, pad: 6, span: 39 });
}

$("webcam-start").addEventListener("click", async () => {
  showError("webcam-error", "");
  try {
    webcam.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640 }, audio: false });
  } catch (error) {
    return showError("webcam-error", `No camera: ${error.message}`);
  }
  $("webcam-video").srcObject = webcam.stream;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = apiKey() ? `?api_key=${encodeURIComponent(apiKey())}` : "";
  webcam.socket = new WebSocket(`${scheme}://${location.host}/api/video/webcam${query}`);
  webcam.socket.onmessage = onWebcamResult;
  webcam.socket.onclose = (e) => { if (webcam.socket) { showError("webcam-error", `Connection closed (${e.code}) ${e.reason || ""}`); stopWebcam(); } };
  webcam.timer = setInterval(sendFrame, 667);
  $("webcam-start").disabled = true; $("webcam-stop").disabled = false;
});
$("webcam-stop").addEventListener("click", stopWebcam);
