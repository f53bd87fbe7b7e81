// GridWatch watch-floor console: live queue (SSE), grid map, detail, actions, KPI tiles.
// In storm mode (a district with an open storm period) the queue rolls that district's
// tickets up per grid (GET /queue?group=auto); a grid row expands to its tickets.
"use strict";
const state = {
  token: null, role: null, queue: [], flat: [], groups: [], storms: [], expanded: new Set(),
  selected: null, geo: null, refreshTimer: null, grid: null,
};
const ACTIONS = {
  pre_alert: ["false_alarm"],
  open: ["acknowledge", "dispatch", "false_alarm"],
  acknowledged: ["dispatch", "resolve", "false_alarm"],
  dispatched: ["resolve", "false_alarm"],
};
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid ?? "")));
  return e;
}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(opts.headers || {}) };
  if (opts.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...opts, headers });
  if (resp.status === 401) { showLogin(t("bad_token")); throw new Error("unauthorised"); }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.detail || `HTTP ${resp.status}`);
  return body;
}

function showLogin(msg) {
  $("#app").hidden = true; $("#login").hidden = false; $("#login-error").textContent = msg || "";
}

async function start() {
  try {
    const me = await api("/api/v1/me");
    state.role = me.role;
    $("#who").textContent = `${me.name} · ${me.role}`;
  } catch (e) { return; }
  $("#login").hidden = true; $("#app").hidden = false;
  await Promise.all([loadMap(), refresh()]);
  stream();
  setInterval(refresh, 30000);  // a safety net under the live stream
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 150);
}

async function refresh() {
  const [q, k, p, n] = await Promise.all([
    api("/api/v1/queue?group=auto"), api("/api/v1/kpis"), api("/api/v1/precision"),
    api("/api/v1/near-misses?limit=10"),
  ]);
  state.flat = q.items;
  state.groups = q.groups || [];
  state.storms = q.storms || [];
  state.queue = state.flat.concat(state.groups.flatMap((g) => g.items));  // every active ticket
  renderStorm(); renderQueue(); renderKpis(k.overall, p.overall); renderPrecision(p); colourMap();
  $("#near-list").replaceChildren(...n.map((m) => el("li", {},
    `${new Date(m.ts).toLocaleString()} · ${m.grid_id} · ${t(m.category)} · ${m.why_not}`)));
  if (state.selected) await showTicket(state.selected);
}

function fmtDue(tk) {
  const due = tk.state === "open" ? tk.ack_due : tk.resolve_due;
  if (!due) return tk.expected_at ? `~${new Date(tk.expected_at).toLocaleTimeString()}` : "—";
  const mins = Math.round((new Date(due) - Date.now()) / 60000);
  return `${new Date(due).toLocaleTimeString()} (${mins >= 0 ? "+" : ""}${mins}′)`;
}

function renderPrecision(p) {
  const rows = [];
  for (const [by, label] of [["by_rule", "rule"], ["by_model", "model"], ["by_sensor", "sensor"]]) {
    const entries = Object.entries(p[by] || {}).sort((a, b) => (a[1].precision ?? 2) - (b[1].precision ?? 2)).slice(0, 5);
    for (const [key, r] of entries) {
      rows.push(el("tr", { "data-by": by }, el("td", {}, t(label)), el("td", {}, key),
        el("td", {}, r.precision === null ? "—" : `${Math.round(r.precision * 100)}%`),
        el("td", {}, r.real + r.already_fixed), el("td", {}, r.false_alarm), el("td", {}, r.n)));
    }
  }
  $("#prec-table tbody").replaceChildren(...rows);
}

function filterGrid(grid) {
  state.grid = state.grid === grid ? null : grid;
  $("#grid-filter").hidden = !state.grid;
  $("#grid-filter-id").textContent = state.grid || "";
  renderQueue();
}

function renderStorm() {
  const banner = $("#storm-banner");
  banner.hidden = !state.storms.length;
  banner.replaceChildren(...state.storms.map((p) => el("div", { "data-district": p.district_id },
    `${t("storm_mode")} · ${p.district_id}`,
    el("span", { class: "sub" }, `${t("storm_since")} ${new Date(p.started_at).toLocaleTimeString()} · ` +
      `${t("storm_peak")} ${Math.round(p.peak_share * 100)}% · ${t("rolled_up")}`))));
}

function ticketRow(tk, inGroup) {
  const breach = tk.ack_breached || tk.resolve_breached;
  const cls = [tk.id === state.selected ? "sel" : "", inGroup ? "in-grp" : ""].join(" ").trim();
  const row = el("tr", { "data-id": tk.id, "data-state": tk.state, class: cls },
    el("td", {}, el("span", { class: `sev ${tk.severity}` }, t(tk.severity))),
    el("td", {}, t(tk.category)),
    el("td", {}, tk.grid_id),
    el("td", { class: "st" }, t(tk.state)),
    el("td", { class: breach ? "breach" : "" }, fmtDue(tk)),
    el("td", {}, tk.assignee));
  row.addEventListener("click", () => showTicket(tk.id));
  return row;
}

// One grid of a storm district: its tickets by category and by state, the worst severity,
// the nearest due time and how many are past it, the oldest; a click shows its tickets.
function groupRow(g, open) {
  const byState = {};
  const cats = Object.entries(g.counts).map(([cat, states]) => {
    let n = 0;
    for (const [st, c] of Object.entries(states)) { n += c; byState[st] = (byState[st] || 0) + c; }
    return `${t(cat)} ${n}`;
  });
  const due = g.earliest_due ? new Date(g.earliest_due).toLocaleTimeString() : "—";
  const row = el("tr", { class: open ? "grp open" : "grp", "data-grid-row": g.grid_id, "data-count": String(g.tickets) },
    el("td", {}, el("span", { class: `sev ${g.worst_severity}` }, t(g.worst_severity))),
    el("td", {}, cats.join(" · ")),
    el("td", {}, g.grid_id, el("span", { class: "n" }, `${g.tickets} ${t("tickets")}`)),
    el("td", {}, Object.entries(byState).map(([st, c]) => `${t(st)} ${c}`).join(" · ")),
    el("td", { class: g.breached ? "breach" : "" }, g.breached ? `${due} · ${t("breached")} ${g.breached}` : due),
    el("td", {}, `${t("oldest")} ${new Date(g.oldest_at).toLocaleTimeString()}`));
  row.addEventListener("click", () => {
    if (state.expanded.has(g.grid_id)) state.expanded.delete(g.grid_id); else state.expanded.add(g.grid_id);
    renderQueue();
  });
  return row;
}

function renderQueue() {
  const body = $("#queue tbody");
  body.replaceChildren();
  const mine = (x) => !state.grid || x.grid_id === state.grid;
  const groups = state.groups.filter(mine);
  const items = state.flat.filter(mine);
  if (!groups.length && !items.length) {
    body.append(el("tr", {}, el("td", { colSpan: 6 }, t("empty"))));
    return;
  }
  for (const g of groups) {
    const open = state.expanded.has(g.grid_id) || state.grid === g.grid_id;
    body.append(groupRow(g, open));
    if (open) for (const tk of g.items) body.append(ticketRow(tk, true));
  }
  for (const tk of items) body.append(ticketRow(tk, false));
}

function renderKpis(k, prec) {
  const fmt = (v, pct) => v === null || v === undefined ? "—" : pct ? `${Math.round(v * 100)}%` : v;
  const tiles = [
    ["kpi_open", fmt(k.open)], ["kpi_pre_alerts", fmt(k.pre_alerts)],
    ["kpi_breaches", fmt(k.sla_breaches)], ["kpi_preempt", fmt(k.pre_emption_rate, true)],
    ["kpi_lead", fmt(k.median_lead_min)], ["kpi_mtta", fmt(k.mtta_min)],
    ["kpi_mttr", fmt(k.mttr_min)], ["kpi_precision", fmt(prec && prec.precision, true)],
  ];
  $("#kpis").replaceChildren(...tiles.map(([key, v]) =>
    el("div", { class: "tile", "data-kpi": key }, el("div", { class: "v" }, v), el("div", { class: "k" }, t(key)))));
}

async function loadMap() {
  state.geo = await api("/api/v1/grids.geojson");
  const grids = state.geo.features.filter((f) => f.properties.level === "grid");
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of grids) for (const [x, y] of f.geometry.coordinates[0]) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  const W = 1000, H = Math.round(W * (y1 - y0) / (x1 - x0) * 1.16) || 600;  // ~cos(31°)
  const svg = $("#map");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  for (const f of grids) {
    const d = f.geometry.coordinates.map((ring) => "M" + ring.map(([x, y]) =>
      `${((x - x0) / (x1 - x0) * W).toFixed(1)},${((y1 - y) / (y1 - y0) * H).toFixed(1)}`).join("L") + "Z").join("");
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", d); p.setAttribute("data-grid", f.properties.id); p.setAttribute("class", "c0");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${f.properties.id} ${f.properties.name || ""}`;
    p.append(title);
    p.addEventListener("click", () => filterGrid(f.properties.id));
    svg.append(p);
  }
  colourMap();
}

function colourMap() {
  const level = {};
  for (const tk of state.queue) {
    const v = tk.state === "pre_alert" ? 1 : 2;
    level[tk.grid_id] = Math.max(level[tk.grid_id] || 0, v);
  }
  const counts = {};
  for (const tk of state.queue) counts[tk.grid_id] = (counts[tk.grid_id] || 0) + 1;
  document.querySelectorAll("#map path").forEach((p) => {
    p.setAttribute("class", `c${level[p.dataset.grid] || 0}`);
    const title = p.querySelector("title");
    if (title) title.textContent = `${p.dataset.grid} · ${t("kpi_open")} ${counts[p.dataset.grid] || 0}`;
  });
}

// Readings (solid) then the forecast median (dashed) with its q10–q90 band, on one time axis.
function sparkline(points, forecast) {
  const svg = $("#spark");
  svg.replaceChildren();
  const fc = (forecast || []).filter((f) => f.q50 !== null);
  if (points.length < 1 && fc.length < 1) return;
  const ns = "http://www.w3.org/2000/svg";
  const times = points.map((p) => Date.parse(p.ts)).concat(fc.map((f) => Date.parse(f.ts)));
  const vals = points.map((p) => p.value).concat(fc.flatMap((f) => [f.q10, f.q50, f.q90].filter((v) => v !== null)));
  const t0 = Math.min(...times), t1 = Math.max(...times), tspan = t1 - t0 || 1;
  const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
  const W = 480, H = 80;
  const x = (ts) => (times.length === 1 ? W / 2 : 5 + (Date.parse(ts) - t0) / tspan * (W - 10)).toFixed(1);
  const y = (v) => (H - 5 - (v - lo) / span * (H - 10)).toFixed(1);
  const poly = (pts, cls) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts); if (cls) line.setAttribute("class", cls); svg.append(line);
  };
  if (fc.length && fc[0].q10 !== null && fc[0].q90 !== null) {
    const band = document.createElementNS(ns, "polygon");
    band.setAttribute("class", "band");
    band.setAttribute("points", fc.map((f) => `${x(f.ts)},${y(f.q90)}`).concat(
      fc.slice().reverse().map((f) => `${x(f.ts)},${y(f.q10)}`)).join(" "));
    svg.append(band);
  }
  if (points.length) poly(points.map((p) => `${x(p.ts)},${y(p.value)}`).join(" "), "obs");
  if (fc.length) poly(fc.map((f) => `${x(f.ts)},${y(f.q50)}`).join(" "), "fc");
}

async function showTicket(id) {
  state.selected = id;
  const d = await api(`/api/v1/tickets/${encodeURIComponent(id)}`);
  $("#detail").hidden = false;
  $("#d-id").textContent = d.id;
  const prob = d.probability !== null ? ` · p=${d.probability}` : "";
  $("#d-summary").replaceChildren(
    el("div", {}, el("span", { class: `sev ${d.severity}` }, t(d.severity)), " ", t(d.category), " · ",
      d.grid_id, " · ", el("b", { id: "d-state", "data-state": d.state }, t(d.state)), prob),
    el("div", {}, `${t("why")}: ${d.why}`),
    el("div", {}, `${t("assignee")}: ${d.assignee} · ${t("agency")}: ${d.agency}`),
    el("div", {}, `${t("versions")}: ${t("rule")} ${d.rule_version || "—"} · ${t("model")} ${d.model_version || "—"}`),
    el("div", { id: "d-complaints" }, `${t("complaints")}: ${d.complaints.length}` +
      d.complaints.filter((c) => c.pre_empted).map((c) => ` · ${t("pre_empted")} ${t("lead")} ${c.lead_min}`).join("")));
  sparkline(d.sparkline, d.forecast);
  const acts = $("#d-actions");
  acts.replaceChildren();
  if (state.role === "operator" || state.role === "admin") {
    for (const a of ACTIONS[d.state] || []) {
      const b = el("button", { type: "button", "data-action": a, class: a === "false_alarm" ? "secondary" : "" }, t(a));
      b.addEventListener("click", () => act(d.id, a));
      acts.append(b);
    }
  }
  $("#d-audit").replaceChildren(...d.audit.map((a) =>
    el("li", {}, `${new Date(a.ts).toLocaleString()} · ${a.actor} · ${a.action} → ${t(a.to_state)} ${a.reason ? "· " + a.reason : ""}`)));
  document.querySelectorAll("#queue tbody tr").forEach((r) => r.classList.toggle("sel", r.dataset.id === id));
}

async function act(id, action) {
  $("#d-error").textContent = "";
  const body = action === "resolve" ? { closing_code: "real" } : {};
  try {
    await api(`/api/v1/tickets/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(body) });
    await refresh();
  } catch (e) { $("#d-error").textContent = e.message; }
}

async function stream() {
  let backoff = 1000;
  for (;;) {
    try {
      const resp = await fetch("/api/v1/stream", { headers: { Authorization: `Bearer ${state.token}` } });
      if (resp.status === 401) { showLogin(t("bad_token")); return; }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      setLive(true); backoff = 1000;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          if (/^event: ticket$/m.test(block)) scheduleRefresh();
        }
      }
    } catch (e) { /* fall through to reconnect */ }
    setLive(false);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15000);
  }
}

function setLive(on) {
  const b = $("#live");
  b.classList.toggle("off", !on); b.dataset.i18n = on ? "live" : "offline"; b.textContent = t(b.dataset.i18n);
}

function boot() {
  applyLabels();
  $("#lang").textContent = LANG === "zh" ? "EN" : "中文";
  $("#lang").addEventListener("click", () => {
    LANG = LANG === "zh" ? "en" : "zh"; localStorage.setItem("gw-lang", LANG);
    $("#lang").textContent = LANG === "zh" ? "EN" : "中文";
    applyLabels(); renderStorm(); renderQueue(); if (state.selected) showTicket(state.selected);
  });
  $("#grid-filter-clear").addEventListener("click", () => filterGrid(state.grid));
  $("#logout").addEventListener("click", () => { sessionStorage.removeItem("gw-token"); location.reload(); });
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { sessionStorage.setItem("gw-token", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname); }
  state.token = sessionStorage.getItem("gw-token");
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("gw-token", state.token);
    start();
  });
  if (state.token) start(); else showLogin();
}

boot();
