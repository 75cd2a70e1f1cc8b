/// The page at `/`: one self-contained HTML document (no CDN, no external asset). It polls
/// /api/connections every second, keeps five minutes of per-WAN throughput, and draws it as
/// SVG. The token, when the listener has one, is asked once and kept in sessionStorage.
enum Dashboard {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mptcp-relay</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em; color: #1d2330; background: #f6f7f9; }
  h1 { font-size: 1.3em; margin: 0 0 .6em; }
  h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
  #totals { display: flex; gap: 1.2em; flex-wrap: wrap; }
  .total { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: .5em .9em; min-width: 7em; }
  .total b { display: block; font-size: 1.3em; }
  #chart { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; width: 100%; height: auto; }
  #chart .grid { stroke: #eceef2; stroke-width: 1; }
  #chart .axis { stroke: #9aa2b1; stroke-width: 1; }
  #chart text { font: 12px system-ui, sans-serif; fill: #5b6475; }
  .note { color: #5b6475; margin: .3em 0; }
  #legend span { margin-right: 1.2em; }
  #legend i { display: inline-block; width: .9em; height: .9em; border-radius: 2px; margin-right: .3em; vertical-align: -1px; }
  table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d8dce3; }
  th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eceef2; font-variant-numeric: tabular-nums; }
  th { background: #eef0f4; font-weight: 600; }
  .badge { border-radius: 3px; padding: 0 .4em; font-size: .85em; color: #fff; }
  .badge.mptcp { background: #1b8a4a; }
  .badge.fallback { background: #c0562a; }
  .badge.pending { background: #7b8494; }
  #error { color: #b3261e; }
</style>
</head>
<body>
<h1>mptcp-relay</h1>
<div id="error"></div>
<div id="totals"></div>
<h2>Throughput per WAN (sent + received, one point a second, last 5 minutes)</h2>
<svg id="chart" viewBox="0 0 1000 250"></svg>
<div id="legend"></div>
<p class="note" id="no-wans">No WAN traffic seen yet: interfaces appear here once the subflows of an MPTCP connection have been read.</p>
<div id="routing"></div>
<table id="uplinks" hidden><thead><tr><th>uplink</th><th>link</th><th>probes</th><th>service</th><th>last round</th></tr></thead><tbody></tbody></table>
<table id="wans" hidden><thead><tr><th>interface</th><th>subflows</th><th>now</th><th>sent</th><th>received</th></tr></thead><tbody></tbody></table>
<h2>Open connections</h2>
<table id="connections"><thead><tr><th>id</th><th>client</th><th>destination</th><th>mode</th><th>MPTCP</th><th>subflows</th><th>up</th><th>down</th><th>age</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const colors = ["#2f6fdf", "#e0862a", "#1b8a4a", "#9b3fc4", "#c23b57", "#2aa7b8"];
const keep = 300;           // samples (one a second): five minutes
const history = {};         // interface -> [{t, bps}]
let last = null;            // previous document, for rates

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function bits(bps) {
  const units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"]; let i = 0;
  while (bps >= 1000 && i < units.length - 1) { bps /= 1000; i++; }
  return bps.toFixed(i ? 1 : 0) + " " + units[i];
}
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }

function headers() {
  const token = sessionStorage.getItem("mptcp-relay-token");
  return token ? { "Authorization": "Bearer " + token } : {};
}

async function poll() {
  let doc;
  try {
    let response = await fetch("api/connections", { headers: headers(), cache: "no-store" });
    if (response.status === 401) {
      const token = prompt("Admin token");
      if (token) sessionStorage.setItem("mptcp-relay-token", token.trim());
      response = await fetch("api/connections", { headers: headers(), cache: "no-store" });
    }
    if (!response.ok) throw new Error("HTTP " + response.status);
    doc = await response.json();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "cannot read the status: " + e.message;
    return;
  }
  render(doc);
}

function render(doc) {
  const t = doc.totals;
  const totals = document.getElementById("totals");
  totals.replaceChildren();
  for (const [label, value, id] of [
    ["open connections", t.open_connections, "open"], ["accepted", t.accepted, "accepted"],
    ["MPTCP", t.mptcp, "mptcp"], ["fallback", t.fallback, "fallback"],
    ["bytes up", bytes(t.bytes_up), "up"], ["bytes down", bytes(t.bytes_down), "down"],
    ["pipes in use", t.pipes_in_use, "pipes"]]) {
    const div = document.createElement("div");
    div.className = "total"; div.id = "total-" + id;
    div.innerHTML = "<b></b><span></span>";
    div.firstChild.textContent = value; div.lastChild.textContent = label;
    totals.appendChild(div);
  }

  // Throughput: what each WAN's counters gained since the previous poll.
  for (const w of doc.wans) {
    const before = last && last.wans.find(x => x.interface === w.interface);
    const seconds = last ? Math.max(0.001, doc.time - last.time) : 0;
    const gained = before ? (w.bytes_sent - before.bytes_sent) + (w.bytes_received - before.bytes_received) : 0;
    const series = history[w.interface] || (history[w.interface] = []);
    if (last) series.push({ t: doc.time, bps: Math.max(0, gained) * 8 / seconds });
    while (series.length > keep) series.shift();
  }
  last = doc;
  drawChart();

  // Without [[wan]] there is no uplink to show: no table, not an empty header row.
  document.getElementById("uplinks").hidden = !(doc.uplinks && doc.uplinks.length);
  document.getElementById("wans").hidden = doc.wans.length === 0;
  document.getElementById("no-wans").hidden = doc.wans.length > 0;
  const routing = document.querySelector("#routing");
  routing.replaceChildren();
  for (const r of doc.routing || []) {
    const line = document.createElement("div");
    line.className = "route"; line.dataset.family = r.family; line.dataset.via = r.via || "";
    line.textContent = "Routed " + r.family + " traffic: " + (r.via ? "by " + r.via : "main routing table") + " (" + r.reason + ")";
    routing.appendChild(line);
  }

  const uplinkBody = document.querySelector("#uplinks tbody");
  uplinkBody.replaceChildren();
  for (const u of doc.uplinks || []) {
    const row = document.createElement("tr");
    row.className = "uplink"; row.dataset.interface = u.interface; row.dataset.inService = u.in_service;
    cell(row, u.interface); cell(row, u.link); cell(row, u.probes);
    cell(row, u.in_service ? "in service" : "out of service"); cell(row, u.detail);
    uplinkBody.appendChild(row);
  }

  const wanBody = document.querySelector("#wans tbody");
  wanBody.replaceChildren();
  for (const w of doc.wans) {
    const series = history[w.interface] || [];
    const row = document.createElement("tr");
    row.className = "wan"; row.dataset.interface = w.interface;
    row.dataset.bytes = w.bytes_sent + w.bytes_received;
    cell(row, w.interface); cell(row, w.subflows);
    cell(row, series.length ? bits(series[series.length - 1].bps) : "-");
    cell(row, bytes(w.bytes_sent)); cell(row, bytes(w.bytes_received));
    wanBody.appendChild(row);
  }

  const body = document.querySelector("#connections tbody");
  body.replaceChildren();
  for (const c of doc.connections) {
    const row = document.createElement("tr");
    row.className = "conn"; row.dataset.id = c.id; row.dataset.mptcp = c.mptcp || "";
    row.dataset.subflows = c.subflows ? c.subflows.length : 0;
    cell(row, c.id); cell(row, c.client || "?"); cell(row, c.destination || "?"); cell(row, c.mode);
    const badge = document.createElement("span");
    badge.className = "badge " + (c.mptcp === "mptcp" ? "mptcp" : c.mptcp ? "fallback" : "pending");
    badge.textContent = c.mptcp === "mptcp" ? "MPTCP" : c.mptcp ? c.mptcp.replace("_", " ") : c.phase;
    cell(row, "").appendChild(badge);
    const sub = cell(row, c.subflows ? String(c.subflows.length) : "-");
    if (c.subflows) sub.title = c.subflows.map(f => (f.interface || "?") + " " + f.local + " -> " + f.remote + (f.rtt_ms != null ? " rtt " + f.rtt_ms + " ms" : "")).join("\n");
    cell(row, bytes(c.bytes_up)); cell(row, bytes(c.bytes_down)); cell(row, c.age_seconds.toFixed(0) + " s");
    body.appendChild(row);
  }
}

// A scale top that reads well: 1, 2 or 5 times a power of ten, at or above `peak`.
function niceTop(peak) {
  const power = Math.pow(10, Math.floor(Math.log10(peak)));
  for (const m of [1, 2, 5, 10]) if (m * power >= peak) return m * power;
  return 10 * power;
}

function drawChart() {
  const svg = document.getElementById("chart");
  const legend = document.getElementById("legend");
  const names = Object.keys(history).sort();
  let peak = 1000;  // the axis shows at least 1 kbit/s
  for (const n of names) for (const p of history[n]) peak = Math.max(peak, p.bps);
  const top = niceTop(peak);
  svg.replaceChildren(); legend.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  // Plot area: x 80..990, y 10..210 (user units of the 1000 x 250 view box).
  const left = 80, right = 990, y0 = 210, y1 = 10;
  function add(tag, attrs, text) {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  // Y axis: four steps of the scale, labelled in bit/s.
  for (let k = 0; k <= 4; k++) {
    const y = y0 - (y0 - y1) * k / 4;
    add("line", { x1: left, x2: right, y1: y, y2: y, class: k ? "grid" : "axis" });
    add("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis-label y" }, bits(top * k / 4));
  }
  add("line", { x1: left, x2: left, y1: y0, y2: y1, class: "axis" });
  // One sample a poll; the x axis holds 30 samples at first and grows to five minutes, so a
  // page opened a moment ago already shows lines. Labels: seconds before now.
  const slots = Math.min(keep, Math.max(30, ...names.map(n => history[n].length)));
  const step = (right - left) / (slots - 1);
  for (let k = 0; k <= 4; k++) {
    const x = left + (right - left) * k / 4;
    const ago = Math.round((slots - 1) * (4 - k) / 4);
    add("text", { x: x, y: y0 + 18, "text-anchor": k === 0 ? "start" : k === 4 ? "end" : "middle", class: "axis-label x" },
        ago ? "-" + ago + " s" : "now");
  }
  add("text", { x: left, y: 246, class: "axis-title" }, "time (seconds before now); y: bit/s per WAN, sent + received");
  svg.dataset.top = top;
  names.forEach((name, i) => {
    const series = history[name];
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", series.map((p, k) => {
      const x = left + (k + slots - series.length) * step;
      const y = y0 - (p.bps / top) * (y0 - y1);
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colors[i % colors.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("class", "series");
    line.dataset.interface = name;
    line.dataset.points = series.length;
    line.dataset.peak = Math.round(Math.max(0, ...series.map(p => p.bps)));
    svg.appendChild(line);
    const key = document.createElement("span");
    key.innerHTML = "<i></i>"; key.firstChild.style.background = colors[i % colors.length];
    key.appendChild(document.createTextNode(name + " (peak " + bits(Math.max(0, ...series.map(p => p.bps))) + ")"));
    legend.appendChild(key);
  });
}

poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""#
}
