/// The page at `/`: one self-contained HTML document (no CDN, no external asset). It polls
/// /api/connections every second while it is open (nothing runs when nobody looks), keeps
/// five minutes of per-WAN throughput and draws it as a stacked SVG chart with time and rate
/// axes. The token, when the listener has one, is asked once and kept in sessionStorage.
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
  #chart { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; width: 100%; height: 260px; display: block; }
  #chart .grid { stroke: #e6e9ef; stroke-width: 1; }
  #chart .axis-label { font-size: 11px; fill: #5b6475; }
  #chart .unit { font-size: 11px; fill: #5b6475; font-weight: 600; }
  #legend span { margin-right: 1.2em; }
  #legend i { display: inline-block; width: .9em; height: .9em; border-radius: 2px; margin-right: .3em; vertical-align: -1px; }
  table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d8dce3; margin-bottom: .8em; }
  th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #eceef2; font-variant-numeric: tabular-nums; }
  th { background: #eef0f4; font-weight: 600; }
  tr.conn { cursor: pointer; }
  tr.conn:hover { background: #f3f6fb; }
  tr.subflows td { background: #fafbfd; padding-left: 2em; color: #3b4354; }
  .badge { border-radius: 3px; padding: 0 .4em; font-size: .85em; color: #fff; }
  .badge.mptcp { background: #1b8a4a; }
  .badge.fallback { background: #c0562a; }
  .badge.pending { background: #7b8494; }
  .badge.out { background: #b3261e; }
  .badge.in { background: #1b8a4a; }
  .badge.open { background: #c0562a; }
  .hidden { display: none; }
  #error { color: #b3261e; }
  #routing div { margin: .2em 0; }
</style>
</head>
<body>
<h1>mptcp-relay</h1>
<div id="error"></div>
<div id="totals"></div>
<h2>Throughput per WAN, stacked (sent + received, one point a second, last 5 minutes)</h2>
<svg id="chart" viewBox="0 0 1000 260" preserveAspectRatio="none"></svg>
<div id="legend"></div>
<section id="uplinks-section" class="hidden">
<h2>Uplinks</h2>
<div id="routing"></div>
<table id="uplinks"><thead><tr><th>uplink</th><th>link</th><th>service</th><th>probe RTT</th><th>probe loss</th><th>flows moved off</th><th>last round</th></tr></thead><tbody></tbody></table>
</section>
<section id="servers-section" class="hidden">
<h2>Tunnel servers</h2>
<table id="servers"><thead><tr><th>server</th><th>service</th><th>ping RTT</th><th>ping loss</th><th>connections</th><th>last ping</th></tr></thead><tbody></tbody></table>
</section>
<section id="keys-section" class="hidden">
<h2>Gateway keys</h2>
<table id="keys"><thead><tr><th>key</th><th>open</th><th>accepted</th><th>refused</th><th>up</th><th>down</th></tr></thead><tbody></tbody></table>
</section>
<section id="wans-section" class="hidden">
<h2>Subflows per interface</h2>
<table id="wans"><thead><tr><th>interface</th><th>subflows</th><th>now</th><th>sent</th><th>received</th></tr></thead><tbody></tbody></table>
</section>
<section id="fallbacks-section" class="hidden">
<h2>Connections without MPTCP</h2>
<table id="fallbacks"><thead><tr><th>id</th><th>client</th><th>destination</th><th>why</th></tr></thead><tbody></tbody></table>
</section>
<section id="udp-section" class="hidden">
<h2>UDP flows through the tunnel <small id="udp-summary"></small></h2>
<table id="udp"><thead><tr><th>id</th><th>client</th><th>destination</th><th>state</th><th>MPTCP</th><th>datagrams up</th><th>datagrams down</th><th>up</th><th>down</th><th>dropped</th><th>queued</th><th>idle</th></tr></thead><tbody></tbody></table>
</section>
<h2>Open connections <small>(click one for its subflows)</small></h2>
<div id="no-connections">none</div>
<table id="connections" class="hidden"><thead><tr><th>id</th><th>client</th><th>destination</th><th>mode</th><th>key / server</th><th>MPTCP</th><th>subflows</th><th>up</th><th>down</th><th>age</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const colors = ["#2f6fdf", "#e0862a", "#1b8a4a", "#9b3fc4", "#c23b57", "#2aa7b8"];
const keep = 300;           // samples (one a second): five minutes
const history = {};         // interface -> [{t, bps}]
// Connections whose subflows are shown: in the address (#conn=ID,ID), so a link opens them.
function opened() {
  const m = location.hash.match(/conn=([^&]*)/);
  return new Set(m ? decodeURIComponent(m[1]).split(",").filter(Boolean) : []);
}
function toggle(id) {
  const set = opened();
  if (set.has(id)) set.delete(id); else set.add(id);
  location.hash = set.size ? "conn=" + encodeURIComponent([...set].join(",")) : "";
}
window.addEventListener("hashchange", () => { if (last) render(last); });
let last = null;            // previous document, for rates
const fallbackWhy = {
  fallback_peer: "the peer does not speak MPTCP (it answered as plain TCP)",
  fallback_kernel: "this kernel refused an MPTCP socket",
  mptcp_lost: "MPTCP was lost on the way (a middlebox stripped its options)",
  disabled: "MPTCP is off for this listener",
};

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
function show(id, visible) { document.getElementById(id).classList.toggle("hidden", !visible); }

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
  if (last !== doc) { last = doc; drawChart(doc.time); }

  const routing = document.getElementById("routing");
  routing.replaceChildren();
  for (const r of doc.routing || []) {
    const line = document.createElement("div");
    line.className = "route"; line.dataset.family = r.family; line.dataset.via = r.via || "";
    line.textContent = "Routed " + r.family + " traffic: " + (r.via ? "by " + r.via : "main routing table") + " (" + r.reason + ")";
    routing.appendChild(line);
  }
  const uplinks = doc.uplinks || [];
  show("uplinks-section", uplinks.length > 0);
  const uplinkBody = document.querySelector("#uplinks tbody");
  uplinkBody.replaceChildren();
  for (const u of uplinks) {
    const row = document.createElement("tr");
    row.className = "uplink"; row.dataset.interface = u.interface; row.dataset.inService = u.in_service;
    cell(row, u.interface); cell(row, u.link);
    const state = document.createElement("span");
    state.className = "badge " + (u.fail_open ? "open" : u.in_service ? "in" : "out");
    state.textContent = u.fail_open ? "fail open" : u.in_service ? (u.probes === "off" ? "in service (not probed)" : "in service") : "out of service";
    cell(row, "").appendChild(state);
    cell(row, u.rtt_ms != null ? u.rtt_ms.toFixed(1) + " ms" : "-");
    cell(row, u.rounds ? (100 * u.failed_rounds / u.rounds).toFixed(1) + " % of " + u.rounds + " rounds" : "-");
    cell(row, u.flows_moved || 0); cell(row, u.detail);
    uplinkBody.appendChild(row);
  }

  const servers = doc.servers || [];
  show("servers-section", servers.length > 0);
  const serverBody = document.querySelector("#servers tbody");
  serverBody.replaceChildren();
  for (const s of servers) {
    const row = document.createElement("tr");
    row.className = "server"; row.dataset.address = s.address; row.dataset.inService = s.in_service;
    cell(row, s.address);
    const state = document.createElement("span");
    state.className = "badge " + (s.in_service ? "in" : "out");
    state.textContent = s.in_service ? "in service" : "out of service";
    cell(row, "").appendChild(state);
    cell(row, s.rtt_ms != null ? s.rtt_ms.toFixed(1) + " ms" : "-");
    cell(row, s.rounds ? (100 * s.failed_rounds / s.rounds).toFixed(1) + " % of " + s.rounds + " pings" : "-");
    cell(row, s.connections); cell(row, s.detail);
    serverBody.appendChild(row);
  }
  const keys = doc.keys || [];
  show("keys-section", keys.length > 0);
  const keyBody = document.querySelector("#keys tbody");
  keyBody.replaceChildren();
  for (const k of keys) {
    const row = document.createElement("tr");
    row.className = "key"; row.dataset.key = k.key;
    cell(row, k.key); cell(row, k.open); cell(row, k.accepted); cell(row, k.refused); cell(row, bytes(k.bytes_up)); cell(row, bytes(k.bytes_down));
    keyBody.appendChild(row);
  }

  // UDP: shown once the relay carries any (a gateway with udp = true, or a server that had a flow).
  const udp = doc.udp;
  show("udp-section", !!udp && (udp.flows_opened > 0 || udp.flows.length > 0));
  if (udp) {
    const dropped = Object.entries(udp.drops).filter(([, n]) => n > 0).map(([why, n]) => why + " " + n).join(", ");
    document.getElementById("udp-summary").textContent =
      "(" + udp.open_flows + " open, " + udp.flows_opened + " since start; dropped: " + (dropped || "none") + ")";
    const udpBody = document.querySelector("#udp tbody");
    udpBody.replaceChildren();
    for (const f of udp.flows) {
      const row = document.createElement("tr");
      row.className = "udp-flow";
      cell(row, f.id); cell(row, f.client || "?"); cell(row, f.destination || "?"); cell(row, f.phase); cell(row, f.mptcp || "-");
      cell(row, f.datagrams_up); cell(row, f.datagrams_down); cell(row, bytes(f.bytes_up)); cell(row, bytes(f.bytes_down));
      cell(row, f.drops); cell(row, bytes(f.queued_bytes)); cell(row, f.idle_seconds.toFixed(1) + " s");
      udpBody.appendChild(row);
    }
  }

  show("wans-section", doc.wans.length > 0);
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

  const fallbacks = doc.connections.filter(c => c.mptcp && c.mptcp !== "mptcp");
  show("fallbacks-section", fallbacks.length > 0);
  const fbBody = document.querySelector("#fallbacks tbody");
  fbBody.replaceChildren();
  for (const c of fallbacks) {
    const row = document.createElement("tr");
    row.className = "fallback"; row.dataset.id = c.id; row.dataset.reason = c.mptcp;
    cell(row, c.id); cell(row, c.client || "?"); cell(row, c.destination || "?"); cell(row, fallbackWhy[c.mptcp] || c.mptcp);
    fbBody.appendChild(row);
  }

  const open = opened();
  show("connections", doc.connections.length > 0);
  show("no-connections", doc.connections.length === 0);
  const body = document.querySelector("#connections tbody");
  body.replaceChildren();
  for (const c of doc.connections) {
    const row = document.createElement("tr");
    row.className = "conn"; row.dataset.id = c.id; row.dataset.mptcp = c.mptcp || "";
    row.dataset.subflows = c.subflows ? c.subflows.length : 0;
    cell(row, c.id); cell(row, c.client || "?"); cell(row, c.destination || "?"); cell(row, c.mode);
    cell(row, c.key || c.server || "-").className = "tunnel";
    row.dataset.key = c.key || ""; row.dataset.server = c.server || "";
    const badge = document.createElement("span");
    badge.className = "badge " + (c.mptcp === "mptcp" ? "mptcp" : c.mptcp ? "fallback" : "pending");
    badge.textContent = c.mptcp === "mptcp" ? "MPTCP" : c.mptcp ? c.mptcp.replace("_", " ") : c.phase;
    cell(row, "").appendChild(badge);
    cell(row, c.subflows ? String(c.subflows.length) : "-");
    cell(row, bytes(c.bytes_up)); cell(row, bytes(c.bytes_down)); cell(row, c.age_seconds.toFixed(0) + " s");
    row.addEventListener("click", () => toggle(c.id));
    body.appendChild(row);
    if (!open.has(c.id)) continue;
    const detail = document.createElement("tr");
    detail.className = "subflows"; detail.dataset.id = c.id;
    const td = document.createElement("td"); td.colSpan = 10;
    const list = c.subflows || [];
    td.textContent = list.length ? "" : (c.subflows ? "no subflow" : "subflows not read for this connection (over the per-request budget, or not MPTCP)");
    for (const f of list) {
      const line = document.createElement("div");
      line.className = "subflow"; line.dataset.interface = f.interface || "";
      line.textContent = (f.interface || "?") + ": " + (f.local || "?") + " \u2192 " + (f.remote || "?")
        + (f.rtt_ms != null ? ", RTT " + f.rtt_ms.toFixed(1) + " ms" : "")
        + (f.bytes_sent != null ? ", sent " + bytes(f.bytes_sent) : "") + (f.bytes_received != null ? ", received " + bytes(f.bytes_received) : "");
      td.appendChild(line);
    }
    detail.appendChild(td);
    body.appendChild(detail);
  }
}

/// A round step for the rate axis: 1, 2 or 5 times a power of ten.
function niceStep(max, ticks) {
  const raw = max / ticks, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function drawChart(now) {
  const svg = document.getElementById("chart");
  const legend = document.getElementById("legend");
  const names = Object.keys(history).sort();
  svg.replaceChildren(); legend.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const L = 70, R = 990, T = 26, B = 228;          // plot area in viewBox units
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.appendChild(e); return e;
  };
  // Time axis: the last five minutes, or less while the page is young (at least 30 s).
  const span = Math.min(keep, Math.max(30, ...names.map(n => history[n].length)));
  const x = t => R - (now - t) / span * (R - L);
  // Stacked: each WAN's band sits on the ones before it; the top edge is the total.
  const times = [...new Set(names.flatMap(n => history[n].map(p => p.t)))].sort((a, b) => a - b);
  const at = (n, t) => { const p = history[n].find(q => q.t === t); return p ? p.bps : 0; };
  const totals = times.map(t => names.reduce((s, n) => s + at(n, t), 0));
  const top = Math.max(1000, ...totals);
  const unit = top >= 1e9 ? [1e9, "Gbit/s"] : top >= 1e6 ? [1e6, "Mbit/s"] : top >= 1e3 ? [1e3, "kbit/s"] : [1, "bit/s"];
  const step = niceStep(top / unit[0], 4) * unit[0];
  const ceiling = Math.ceil(top / step) * step;
  const y = v => B - v / ceiling * (B - T);
  for (let v = 0; v <= ceiling + step / 2; v += step) {
    el("line", { x1: L, x2: R, y1: y(v), y2: y(v), class: "grid" });
    el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis-label rate-tick" }, String(+(v / unit[0]).toFixed(2)));
  }
  el("text", { x: L - 6, y: 13, "text-anchor": "end", class: "unit", id: "rate-unit" }, unit[1]);
  for (let s = 0; s <= span; s += span > 120 ? 60 : 10) {
    el("line", { x1: x(now - s), x2: x(now - s), y1: T, y2: B, class: "grid" });
    el("text", { x: x(now - s), y: B + 16, "text-anchor": s === 0 ? "end" : "middle", class: "axis-label time-tick" }, s === 0 ? "now" : "-" + s + " s");
  }
  el("text", { x: (L + R) / 2, y: 256, "text-anchor": "middle", class: "unit", id: "time-unit" }, "time (seconds before now)");
  const base = times.map(() => 0);
  names.forEach((name, i) => {
    const series = history[name];
    const upper = times.map((t, k) => base[k] + at(name, t));
    if (times.length) {
      const pts = times.map((t, k) => x(t).toFixed(1) + "," + y(upper[k]).toFixed(1))
        .concat(times.slice().reverse().map((t, k) => x(t).toFixed(1) + "," + y(base[times.length - 1 - k]).toFixed(1)));
      el("polygon", { points: pts.join(" "), fill: colors[i % colors.length], "fill-opacity": "0.35", class: "band" }).dataset.interface = name;
    }
    const line = el("polyline", {
      points: times.map((t, k) => x(t).toFixed(1) + "," + y(upper[k]).toFixed(1)).join(" "),
      fill: "none", stroke: colors[i % colors.length], "stroke-width": "2", "vector-effect": "non-scaling-stroke", class: "series",
    });
    line.dataset.interface = name;
    line.dataset.points = series.length;
    line.dataset.peak = Math.round(Math.max(0, ...series.map(p => p.bps)));
    upper.forEach((v, k) => base[k] = v);
    const key = document.createElement("span");
    key.innerHTML = "<i></i>"; key.firstChild.style.background = colors[i % colors.length];
    const nowBps = series.length ? series[series.length - 1].bps : 0;
    key.appendChild(document.createTextNode(name + " " + bits(nowBps) + " (peak " + bits(Math.max(0, ...series.map(p => p.bps))) + ")"));
    legend.appendChild(key);
  });
  if (names.length) {
    const total = el("polyline", { points: times.map((t, k) => x(t).toFixed(1) + "," + y(totals[k]).toFixed(1)).join(" "),
      fill: "none", stroke: "#1d2330", "stroke-width": "1.5", "stroke-dasharray": "4 3", "vector-effect": "non-scaling-stroke", class: "total" });
    total.dataset.peak = Math.round(Math.max(0, ...totals));
    const key = document.createElement("span");
    key.id = "legend-total";
    key.textContent = "total " + bits(totals.length ? totals[totals.length - 1] : 0);
    legend.appendChild(key);
  } else {
    el("text", { x: (L + R) / 2, y: (T + B) / 2, "text-anchor": "middle", class: "axis-label" }, "no MPTCP subflow yet");
  }
}

poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""#
}
