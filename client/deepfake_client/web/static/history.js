// The History tab (issue 20): the prediction records, the old system's four charts drawn as SVG by
// hand (no library, no CDN), a paged table and a record's details. Uses /api/history only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const num = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const VERDICT = { FAKE: "#c92a2a", REAL: "#2b8a3e", NO_FACE: "#868e96" };
  const PALETTE = ["#1c7ed6", "#f08c00", "#7048e8", "#0ca678", "#e64980", "#495057"];
  const PAGE = 25, CHART_RECORDS = 1000;
  const W = 600, H = 220, L = 44, R = 10, T = 12, B = 28;  // SVG box and margins
  let offset = 0;

  function query(extra) {
    const p = new URLSearchParams(extra);
    const set = (k, v) => { if (v !== "" && v !== null && v !== undefined) p.set(k, v); };
    set("verdict", $("hist-verdict").value);
    set("since", $("hist-since").value);
    set("filename", $("hist-filename").value.trim());
    set("min_disagreement", $("hist-disagree").checked ? "0.3" : "");
    set("kind", $("hist-kind").value);
    return p.toString();
  }

  async function getJson(url) {
    // The API key the page asked for (app.js), when the gateway requires one.
    const response = await fetch(url, { headers: typeof keyHeaders === "function" ? keyHeaders() : {} });
    const text = await response.text();
    if (response.status === 404 && url.startsWith("/api/history?")) throw new Error("Recording is off on this gateway (deepfake web --no-record).");
    if (!response.ok) { let d = text; try { d = JSON.parse(text).detail; } catch (_) { /* text */ } throw new Error(d || `HTTP ${response.status}`); }
    return JSON.parse(text);
  }

  // Axes and scales
  const scale = (lo, hi, a, b) => (v) => (hi === lo ? (a + b) / 2 : a + ((v - lo) / (hi - lo)) * (b - a));
  function frame(svg, title, xLabel, yLabel, yTicks) {
    let s = `<text x="${L}" y="10" class="t">${esc(title)}</text>`;
    s += `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" class="ax"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" class="ax"/>`;
    for (const [y, label] of yTicks) s += `<text x="${L - 4}" y="${y + 3}" text-anchor="end" class="k">${label}</text><line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" class="g"/>`;
    s += `<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle" class="k">${esc(xLabel)}</text>`;
    s += `<text x="10" y="${(T + H - B) / 2}" transform="rotate(-90 10 ${(T + H - B) / 2})" text-anchor="middle" class="k">${esc(yLabel)}</text>`;
    svg.innerHTML = s;
  }
  const probTicks = (y) => [0, 0.5, 1].map((v) => [y(v), v.toFixed(1)]);
  const timeLabel = (ms) => new Date(ms).toISOString().slice(5, 16).replace("T", " ");
  function timeAxis(svg, x, t0, t1) {
    const anchors = ["start", "middle", "end"];
    svg.innerHTML += [t0, (t0 + t1) / 2, t1].map((t, i) => `<text x="${x(t)}" y="${H - B + 12}" text-anchor="${anchors[i]}" class="k">${timeLabel(t)}</text>`).join("");
  }
  const dot = (x, y, color, title, r = 3) => `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="${color}" fill-opacity=".75"><title>${esc(title)}</title></circle>`;
  const legend = (items) => items.map(([name, color], i) => `<text x="${W - R - 4}" y="${T + 10 + i * 12}" text-anchor="end" class="k" fill="${color}">■ ${esc(name)}</text>`).join("");

  function chartOverTime(svg, records, value, title, yLabel, colorOf) {
    const points = records.filter((r) => value(r) !== null && value(r) !== undefined);
    const times = points.map((r) => Date.parse(r.created_at));
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const top = yLabel === "p(fake)" ? 1 : Math.max(0.001, ...points.map(value)) * 1.1;
    const x = scale(t0, t1, L + 6, W - R - 6), y = scale(0, top, H - B, T);
    frame(svg, title, "time (UTC)", yLabel, yLabel === "p(fake)" ? probTicks(y) : [0, top / 2, top].map((v) => [y(v), v.toFixed(2)]));
    if (!points.length) return;
    timeAxis(svg, x, t0, t1);
    svg.innerHTML += points.map((r, i) => dot(x(times[i]), y(value(r)), colorOf(r), `#${r.id} ${r.verdict} ${num(value(r))}`)).join("");
  }

  function models(records) {
    return [...new Set(records.flatMap((r) => Object.keys(r.model_probabilities || {})))].sort();
  }

  function chartDistribution(svg, records) {
    const names = models(records), bins = 10;
    const series = [["ensemble", records.map((r) => r.fake_probability)], ...names.map((n) => [n, records.map((r) => (r.model_probabilities || {})[n])])];
    const counts = series.map(([, values]) => {
      const c = new Array(bins).fill(0);
      values.filter((v) => v !== null && v !== undefined).forEach((v) => { c[Math.min(bins - 1, Math.floor(v * bins))] += 1; });
      return c;
    });
    const top = Math.max(1, ...counts.flat());
    const x = scale(0, 1, L, W - R), y = scale(0, top, H - B, T);
    frame(svg, "Distribution of p(fake): each model and the ensemble", "p(fake)", "records", [0, Math.round(top / 2), top].map((v) => [y(v), v]));
    svg.innerHTML += [0, 0.5, 1].map((v) => `<text x="${x(v)}" y="${H - B + 12}" text-anchor="middle" class="k">${v}</text>`).join("");
    svg.innerHTML += counts.map((c, s) => {
      const color = s === 0 ? "#212529" : PALETTE[(s - 1) % PALETTE.length];
      const path = c.map((n, b) => `${b ? "L" : "M"}${x((b + 0.5) / bins).toFixed(1)},${y(n).toFixed(1)}`).join(" ");
      return `<path d="${path}" fill="none" stroke="${color}" stroke-width="${s === 0 ? 3 : 1.5}"/>`;
    }).join("") + legend(series.map(([n], s) => [n, s === 0 ? "#212529" : PALETTE[(s - 1) % PALETTE.length]]));
  }

  function chartModelsVsEnsemble(svg, records) {
    const names = models(records);
    const x = scale(0, 1, L, W - R), y = scale(0, 1, H - B, T);
    frame(svg, "Each model against the ensemble", "ensemble p(fake)", "model p(fake)", probTicks(y));
    svg.innerHTML += [0, 0.5, 1].map((v) => `<text x="${x(v)}" y="${H - B + 12}" text-anchor="middle" class="k">${v}</text>`).join("");
    svg.innerHTML += `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" class="d"/>`;
    svg.innerHTML += records.filter((r) => r.fake_probability !== null).flatMap((r) => names.map((n, i) => {
      const v = (r.model_probabilities || {})[n];
      return v === undefined ? "" : dot(x(r.fake_probability), y(v), PALETTE[i % PALETTE.length], `#${r.id} ${n} ${num(v)} vs ${num(r.fake_probability)}`, 2.5);
    })).join("") + legend(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  }

  function table(page) {
    const rows = page.records.map((r) => `<tr data-id="${r.id}" tabindex="0"><td class="num">${r.id}</td><td>${esc(r.created_at.slice(0, 19).replace("T", " "))}</td>`
      + `<td>${esc(r.kind)}</td><td class="tag ${esc(r.verdict)}">${esc(r.verdict)}</td><td class="num">${num(r.fake_probability)}</td>`
      + `<td class="num">${r.num_faces}</td><td class="num">${num(r.disagreement)}</td><td>${esc(r.filename || "")}${r.untrained ? " <small>(untrained)</small>" : ""}</td></tr>`).join("");
    $("hist-table").innerHTML = `<thead><tr><th class="num">id</th><th>time (UTC)</th><th>kind</th><th>verdict</th><th class="num">p(fake)</th>`
      + `<th class="num">faces</th><th class="num">spread</th><th>file</th></tr></thead><tbody>${rows}</tbody>`;
    $("hist-page").textContent = page.total ? `${page.offset + 1}–${page.offset + page.records.length} of ${page.total}` : "no records";
    $("hist-prev").disabled = page.offset === 0;
    $("hist-next").disabled = page.offset + page.records.length >= page.total;
    $("hist-table").querySelectorAll("tbody tr").forEach((tr) => {
      const open = () => showRecord(tr.dataset.id);
      tr.addEventListener("click", open);
      tr.addEventListener("keydown", (e) => e.key === "Enter" && open());
    });
  }

  async function showRecord(id) {
    try {
      const r = await getJson(`/api/history/${id}`);
      const fields = ["id", "created_at", "kind", "source", "verdict", "fake_probability", "num_faces", "disagreement", "untrained",
        "processing_time_s", "filename", "size_bytes", "width", "height", "sha256", "server_url", "settings_sha256", "provenance", "group_id", "frame_index"];
      const faces = (r.faces || []).map((f, i) => `<tr><td>${i + 1}</td><td>${f.box.map((v) => Math.round(v)).join(", ")}</td><td class="num">${num(f.fake_probability)}</td>`
        + `<td>${Object.entries(f.model_probabilities).map(([k, v]) => `${esc(k)} ${num(v)}`).join(" · ")}</td></tr>`).join("");
      $("hist-detail").innerHTML = `<h2>Record ${r.id} <button type="button" id="hist-close" class="link">close</button></h2>`
        + (r.has_thumbnail ? `<img src="/api/history/${r.id}/thumbnail" alt="thumbnail" class="thumb">` : "")
        + `<dl class="fields">${fields.map((k) => `<dt>${k}</dt><dd>${esc(typeof r[k] === "number" && !Number.isInteger(r[k]) ? num(r[k], 4) : r[k] ?? "–")}</dd>`).join("")}</dl>`
        + (faces ? `<table class="results"><thead><tr><th>face</th><th>box</th><th class="num">p(fake)</th><th>models</th></tr></thead><tbody>${faces}</tbody></table>` : "")
        + `<p class="note">Seen before: <a href="#" id="hist-same">every record of this sha256</a></p>`;
      $("hist-detail").hidden = false;
      $("hist-close").onclick = () => { $("hist-detail").hidden = true; };
      $("hist-same").onclick = (e) => { e.preventDefault(); if (r.sha256) loadSha(r.sha256); };
      $("hist-detail").scrollIntoView({ block: "nearest" });
    } catch (error) { showError(error.message); }
  }

  function showError(message) { $("hist-error").textContent = message || ""; $("hist-error").hidden = !message; }

  async function loadSha(sha) {
    const page = await getJson(`/api/history?sha256=${sha}&limit=${PAGE}`);
    table(page);
  }

  async function load() {
    showError("");
    try {
      const [page, all] = await Promise.all([
        getJson(`/api/history?${query({ limit: PAGE, offset })}`),
        getJson(`/api/history?${query({ limit: CHART_RECORDS })}`),
      ]);
      table(page);
      const records = all.records.slice().reverse();  // oldest first for the time axes
      chartOverTime($("hist-chart-time"), records, (r) => r.fake_probability, "p(fake) over time", "p(fake)", (r) => VERDICT[r.verdict]);
      chartDistribution($("hist-chart-dist"), records);
      chartOverTime($("hist-chart-speed"), records, (r) => r.processing_time_s, "Processing time over time", "seconds", () => "#1c7ed6");
      chartModelsVsEnsemble($("hist-chart-models"), records);
      $("hist-chart-note").textContent = `Charts: the newest ${records.length} of ${all.total} matching records.`;
      const csv = `/api/history/export?${query({ format: "csv" })}`;
      $("hist-csv").href = csv;
      $("hist-parquet").href = csv.replace("format=csv", "format=parquet");
    } catch (error) { showError(error.message); }
  }

  $("tab-history").innerHTML = `
    <form id="hist-filters" class="filters">
      <label>Verdict <select id="hist-verdict"><option value="">any</option><option>FAKE</option><option>REAL</option><option>NO_FACE</option></select></label>
      <label>Kind <select id="hist-kind"><option value="">any</option><option>image</option><option value="batch_item">batch item</option><option>video</option><option>frame</option><option>webcam</option></select></label>
      <label>Since <select id="hist-since"><option value="">all time</option><option value="1h">1 hour</option><option value="1d">1 day</option><option value="7d">7 days</option><option value="30d">30 days</option></select></label>
      <label>File <input id="hist-filename" size="10" placeholder="name"></label>
      <label class="check"><input type="checkbox" id="hist-disagree"> models disagree (spread ≥ 0.3)</label>
      <button type="submit">Apply</button>
    </form>
    <p class="error" id="hist-error" hidden></p>
    <div class="charts">
      <svg id="hist-chart-time" viewBox="0 0 ${W} ${H}" role="img" aria-label="p(fake) over time"></svg>
      <svg id="hist-chart-dist" viewBox="0 0 ${W} ${H}" role="img" aria-label="distribution of p(fake)"></svg>
      <svg id="hist-chart-speed" viewBox="0 0 ${W} ${H}" role="img" aria-label="processing time over time"></svg>
      <svg id="hist-chart-models" viewBox="0 0 ${W} ${H}" role="img" aria-label="each model against the ensemble"></svg>
    </div>
    <p class="note" id="hist-chart-note"></p>
    <div class="progress-line"><button type="button" id="hist-prev">‹ Newer</button><span id="hist-page"></span>
      <button type="button" id="hist-next">Older ›</button><span class="note">Export: <a id="hist-csv">CSV</a> · <a id="hist-parquet">Parquet</a></span></div>
    <table class="results" id="hist-table"></table>
    <section id="hist-detail" class="detail" hidden></section>`;

  $("hist-filters").addEventListener("submit", (e) => { e.preventDefault(); offset = 0; load(); });
  $("hist-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  $("hist-next").addEventListener("click", () => { offset += PAGE; load(); });
  document.querySelector('nav button[data-tab="history"]').addEventListener("click", load);
})();
