// warden dashboard: the fleet pushed over a WebSocket (`live`), a node's
// page, and actions posted with the session's CSRF token. Every URL is
// relative, so a reverse proxy may mount this under any prefix.
"use strict";
const $ = (s) => document.querySelector(s);
const CSRF = document.querySelector('meta[name=csrf]').content;
const READ_ONLY = document.querySelector('meta[name=mode]').content === "read-only";
const esc = (v) => String(v ?? "-").replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const ago = (ms, now) => { if (!ms) return "never"; const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 90 ? s + "s" : s < 5400 ? Math.round(s / 60) + "m" : s < 172800 ? Math.round(s / 3600) + "h" : Math.round(s / 86400) + "d"; };
let fleet = null, watching = null, scheduled = false;
// OK rows listed in the table unless asked for all (the tiles show every node).
const OK_ROWS = 200;

// Commands of protocol.md's table: params, and what the confirmation says.
const COMMANDS = {
  start: {params: [], all: true}, stop: {params: [], all: true, warn: "stop the container; the node goes offline and stops validating"},
  restart: {params: [], warn: "restart the container; the node is offline for a while"},
  logs: {params: [["lines", "int", "50"]]}, status: {params: [], all: true},
  exec: {params: [["command", "text", ""]]}, payout: {params: []}, backup_keys: {params: []},
  restore_keys: {params: [["backup_file", "text", ""]], warn: "replace the node's keys with those in the backup and restart it (the keys it has now are saved first)"},
  rotate_keys: {params: [], warn: "make new session keys on the node; they do nothing until set on chain with session.setKeys"},
  check_keys: {params: [["rotate_to_check", "bool", "false"], ["public_keys", "map", ""]]},
  has_session_keys: {params: [["session_keys", "text", ""]]},
  has_key: {params: [["public_key", "text", ""], ["key_type", "text", ""]]},
  find_validator: {params: [["session_keys", "text", ""], ["deep_search", "bool", "true"]]},
};

function post(url, body) {
  return fetch(url, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF}, body: JSON.stringify(body)});
}

// The fleet as the server pushed it: a snapshot, then numbered deltas of
// the rows that changed (src/server/web/delta.rs). Rows are kept by key.
let live = null;
const nodeKey = (n) => n.agent + "\n" + n.container;
const alertKey = (a) => JSON.stringify([a.rule ?? null, a.agent ?? null, a.container ?? null]);
const keyed = (list, key) => new Map(list.map((x) => [key(x), x]));

function apply(f) {
  if (f.type === "snapshot") {
    const s = f.fleet;
    live = {seq: f.seq, ts: s.ts, agents: keyed(s.agents, (a) => a.id), nodes: keyed(s.nodes, nodeKey), alerts: keyed(s.alerts, alertKey), commands: s.commands};
    return true;
  }
  if (!live || f.seq !== live.seq + 1) return false;
  live.seq = f.seq; live.ts = f.ts;
  for (const a of f.agents || []) live.agents.set(a.id, a);
  for (const id of f.agents_gone || []) live.agents.delete(id);
  for (const n of f.nodes || []) live.nodes.set(nodeKey(n), n);
  for (const [agent, container] of f.nodes_gone || []) live.nodes.delete(nodeKey({agent, container}));
  for (const a of f.alerts || []) live.alerts.set(alertKey(a), a);
  for (const [rule, agent, container] of f.alerts_gone || []) live.alerts.delete(alertKey({rule, agent, container}));
  if (f.commands) live.commands = f.commands;
  return true;
}

function connect() {
  const url = new URL("live", location.href); url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  let waiting = false;
  ws.onopen = () => { live = null; $("#conn").textContent = "live"; $("#conn").className = "pill up"; };
  // Every frame is applied as it comes (a delta is small); the page is
  // drawn once a frame at most, so a big fleet changing fast never queues
  // work in the browser. A gap in the numbers: ask for a fresh snapshot
  // and ignore deltas until it comes.
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (waiting && f.type !== "snapshot") return;
    waiting = !apply(f);
    if (waiting) { ws.send("resync"); return; }
    if (!scheduled) { scheduled = true; requestAnimationFrame(() => { scheduled = false; fleet = view(); render(); }); }
  };
  ws.onclose = () => { $("#conn").textContent = "disconnected: reconnecting"; $("#conn").className = "pill down"; setTimeout(connect, 2000); };
}

// The shape render() reads, from the kept rows.
const view = () => ({ts: live.ts, agents: [...live.agents.values()], nodes: [...live.nodes.values()], alerts: [...live.alerts.values()], commands: live.commands});

function rows() {
  const out = fleet.nodes.slice();
  for (const a of fleet.agents) if (!a.connected)
    out.push({agent: a.id, container: "", state: "-", severity: 2, problem: "AGENT DISCONNECTED", seen: a.last_seen_ms});
  out.sort((a, b) => b.severity - a.severity || a.agent.localeCompare(b.agent) || a.container.localeCompare(b.container));
  return out;
}

// The fleet view's parts, each replaced only when its HTML changed: most
// frames change a few rows, and re-laying out 3,000 tiles would be most of
// the browser's work.
const drawn = new Map();
function put(sel, html) { if (drawn.get(sel) !== html) { drawn.set(sel, html); $(sel).innerHTML = html; } }

function render() {
  if (!fleet) return;
  const now = fleet.ts, all = rows(), f = $("#filter").value.toLowerCase();
  // Rows are kept between frames: read an agent's last-seen, never store it on its nodes.
  const agentOf = new Map(fleet.agents.map((a) => [a.id, a]));
  const bad = all.filter((r) => r.severity === 2).length, warn = all.filter((r) => r.severity === 1).length;
  $("#counts").textContent = `${fleet.agents.filter((a) => a.connected).length}/${fleet.agents.length} agents · ${fleet.nodes.length} nodes · ${bad} down · ${warn} warnings`;
  put("#alerts", fleet.alerts.map((a) => `<div role="alert">ALERT ${esc(a.rule || a.alert)}: ${esc(a.summary || a.subject || JSON.stringify(a))}</div>`).join(""));
  // One tile per node: 200 fit one screen; the word says what is wrong.
  put("#overview", all.map((r) => `<a class="sev${r.severity}" href="${r.container ? `#node/${encodeURIComponent(r.agent)}/${encodeURIComponent(r.container)}` : "#"}" title="${esc(r.agent)} ${esc(r.container)}: ${esc(r.problem)}">${r.severity ? esc(r.problem.split(" ")[0]) : "ok"} ${esc(r.container || r.agent)}</a>`).join(""));
  let html = "", okShown = 0, okHidden = 0;
  const every = $("#all").checked || f;
  for (const r of all) {
    const text = `${r.agent} ${r.container} ${r.problem}`.toLowerCase();
    if (f && !text.includes(f)) continue;
    if (!r.severity && !every && okShown++ >= OK_ROWS) { okHidden++; continue; }
    const node = r.container ? `<a href="#node/${encodeURIComponent(r.agent)}/${encodeURIComponent(r.container)}">${esc(r.container)}</a>` : "-";
    const unc = r.unclaimed == null ? "-" : r.unclaimed + (r.unclaimed > 0 && r.oldest_days != null ? ` (oldest ${r.oldest_days}d)` : "");
    html += `<tr class="sev${r.severity}" data-agent="${esc(r.agent)}" data-container="${esc(r.container)}"><td>${esc(r.problem)}</td><td>${esc(r.agent)}</td><td>${node}</td><td>${esc(r.state)}</td><td>${esc(r.best)}</td><td>${esc(r.finalized)}</td><td>${esc(r.lag)}</td><td>${esc(r.peers)}</td><td>${r.syncing == null ? "-" : r.syncing ? "yes" : "no"}</td><td>${esc(r.era)}</td><td>${r.validator ? esc(r.validator.slice(0, 10)) + "…" : esc(r.roles || "-")}</td><td>${esc(unc)}</td><td>${r.backup_ms ? ago(r.backup_ms, now) : "none"}</td><td>${ago(r.seen ?? agentOf.get(r.agent)?.last_seen_ms, now)}</td></tr>`;
  }
  put("#fleet tbody", html);
  $("#hidden").textContent = okHidden ? `${okHidden} more nodes are ok (tick "every node" or filter to list them)` : "";
  const withNodes = new Set(fleet.nodes.map((n) => n.agent));
  put("#bare-agents", fleet.agents.filter((a) => a.connected && !withNodes.has(a.id)).map((a) => `<li>${esc(a.id)} (${esc(a.host)}): ${esc(a.docker_error || "no stats yet")}</li>`).join("") || "<li>none</li>");
  put("#commands tbody", fleet.commands.slice().reverse().slice(0, 15).map(cmdRow).join(""));
  if (watching) renderNode();
}

const cmdRow = (c) => `<tr><td>${esc(c.id)}</td><td>${esc(c.agent)}</td><td>${esc(c.command)}</td><td>${esc(c.target)}</td><td>${esc(c.by)}</td><td class="status-${esc(c.status)}">${esc(c.status)}</td></tr>`;

function chart(title, samples, key) {
  const pts = samples.filter((s) => s[key] != null);
  if (pts.length < 2) return `<figure><figcaption>${title}: ${pts.length ? esc(pts[0][key]) : "no data yet"}</figcaption></figure>`;
  const xs = pts.map((s) => s.ts), ys = pts.map((s) => s[key]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const p = pts.map((s) => `${((s.ts - x0) / (x1 - x0 || 1) * 216 + 2).toFixed(1)},${(58 - (s[key] - y0) / (y1 - y0 || 1) * 56).toFixed(1)}`).join(" ");
  const last = ys[ys.length - 1];
  return `<figure><figcaption>${title}: ${key === "mem" ? (last / 1048576).toFixed(0) + " MiB" : key === "cpu" ? last.toFixed(1) + "%" : last}</figcaption><svg viewBox="0 0 220 60" role="img" aria-label="${title} over time"><polyline points="${p}"/></svg></figure>`;
}

async function loadNode() {
  const [agent, container] = watching;
  const res = await fetch(`api/node?agent=${encodeURIComponent(agent)}&container=${encodeURIComponent(container)}`, {credentials: "same-origin"});
  if (!res.ok) { $("#node-state").textContent = "cannot load: " + (await res.text()); return; }
  const d = await res.json();
  $("#charts").innerHTML = chart("Best height", d.samples, "best") + chart("Peers", d.samples, "peers") + chart("CPU", d.samples, "cpu") + chart("Memory", d.samples, "mem");
  const mine = (x) => !x.container || x.container === container;
  $("#keys tbody").innerHTML = d.keys.filter(mine).map((k) => `<tr><td>${new Date(k.received_ms).toISOString()}</td><td>${esc(k.container)}</td><td>${esc(k.action)}</td><td>${esc(k.session_key)}</td></tr>`).join("") || "<tr><td colspan=4>no key updates reported</td></tr>";
  $("#backups tbody").innerHTML = d.backups.filter(mine).map((b) => `<tr><td>${new Date(b.at_ms).toISOString()}</td><td>${esc(b.container)}</td><td>${esc(b.file)}</td><td>${esc(b.bytes)}</td></tr>`).join("") || "<tr><td colspan=4>no backups reported</td></tr>";
  $("#node-commands tbody").innerHTML = d.commands.slice().reverse().map((c) => `<tr><td>${esc(c.id)}</td><td>${esc(c.command)}</td><td>${esc(c.target)}</td><td>${esc(c.by)}</td><td class="status-${esc(c.status)}">${esc(c.status)}</td><td>${esc(c.error || "")}</td></tr>`).join("");
}

let lastNodeLoad = 0;
function renderNode() {
  const [agent, container] = watching;
  const r = fleet && fleet.nodes.find((n) => n.agent === agent && n.container === container);
  $("#node-state").innerHTML = r ? `<span class="pill">${esc(r.problem)}</span> state ${esc(r.state)} · best ${esc(r.best)} · finalized ${esc(r.finalized)} · lag ${esc(r.lag)} · peers ${esc(r.peers)} · era ${esc(r.era)}` : "not reporting (agent disconnected or no stats yet)";
  for (const p of pending) {
    const c = fleet && fleet.commands.find((x) => x.id === p.id);
    if (c && c.status !== p.status) { p.status = c.status; showStatus(); if (c.status === "completed" || c.status === "failed") finish(p); }
  }
  if (Date.now() - lastNodeLoad > 3000) { lastNodeLoad = Date.now(); loadNode(); }
}

let pending = [];
function showStatus() { $("#action-status").innerHTML = pending.map((p) => `${esc(p.label)}: <b class="status-${esc(p.status)}">${esc(p.status)}</b>`).join("<br>"); }
async function finish(p) {
  const res = await fetch(`api/result?id=${encodeURIComponent(p.id)}`, {credentials: "same-origin"});
  if (!res.ok) return;
  const o = await res.json();
  const text = o.status === "failed" ? `failed (${o.code}): ${o.error}` : typeof o.result === "string" ? o.result : JSON.stringify(o.result, null, 2);
  if (p.into === "logs") $("#logs").textContent = text; else $("#action-result").textContent = text;
  if (o.status === "failed" && /signature/i.test(o.error || "")) $("#sign-note").innerHTML = signLine(p.body, true);
  lastNodeLoad = 0;
}

function signLine(body, failed) {
  const params = Object.entries(body.params).filter(([, v]) => v !== "" && v != null).map(([k, v]) => `${k}=${typeof v === "string" ? "'" + v + "'" : v}`).join(" ");
  return `${failed ? "This agent requires signatures for " + esc(body.command) + ". " : "If this agent's policy requires signatures for " + esc(body.command) + ", the dashboard cannot sign (it never holds your key): "}run <code>warden ctl --key YOUR-KEY-FILE --wait=600 send ${esc(body.agent)} ${esc(body.command)} ${esc(body.target)} ${esc(params)}</code>`;
}

async function run(body, into) {
  const spec = COMMANDS[body.command];
  if (spec.warn) {
    $("#confirm-text").textContent = `${body.command} on ${body.target} of agent ${body.agent}: this will ${spec.warn}. Go on?`;
    $("#confirm").showModal();
    const ok = await new Promise((res) => $("#confirm").addEventListener("close", () => res($("#confirm").returnValue === "ok"), {once: true}));
    if (!ok) return;
  }
  const label = `${body.command} ${body.target}`;
  const res = await post("api/action", body);
  if (!res.ok) { $("#action-status").innerHTML = `<span class="err">refused: ${esc(await res.text())}</span>`; return; }
  const a = await res.json();
  if (!a.issued.length) { $("#action-status").innerHTML = `<span class="err">${esc(a.text || "not sent")}</span>`; return; }
  pending = a.issued.map((id) => ({id, label, status: "accepted", into, body}));
  showStatus();
}

function paramFields() {
  const spec = COMMANDS[$("#command").value];
  $("#params").innerHTML = spec.params.map(([k, t, d]) => t === "bool"
    ? `<label>${k} <select data-k="${k}" data-t="bool"><option${d === "false" ? " selected" : ""}>false</option><option${d === "true" ? " selected" : ""}>true</option></select></label>`
    : `<label>${k} <input data-k="${k}" data-t="${t}" value="${d}" ${t === "map" ? 'placeholder="gran=0x…,babe=0x…"' : ""}></label>`).join(" ");
  $("#sign-note").innerHTML = signLine({agent: watching[0], command: $("#command").value, target: watching[1], params: {}}, false);
}

function formBody() {
  const params = {};
  for (const el of document.querySelectorAll("#params [data-k]")) {
    const k = el.dataset.k, t = el.dataset.t, v = el.value.trim();
    if (t === "bool") params[k] = v === "true";
    else if (t === "int") { if (v) params[k] = parseInt(v, 10); }
    else if (t === "map") { for (const part of v.split(",").filter(Boolean)) { const [mk, mv] = part.split("="); if (mk && mv) params[`${k}.${mk.trim()}`] = mv.trim(); } }
    else if (v || k === "session_keys") params[k] = v;
  }
  return {agent: watching[0], command: $("#command").value, target: watching[1], params};
}

function route() {
  const m = location.hash.match(/^#node\/([^/]+)\/(.+)$/);
  watching = m ? [decodeURIComponent(m[1]), decodeURIComponent(m[2])] : null;
  $("#fleet-view").hidden = !!watching; $("#node-view").hidden = !watching;
  if (watching) {
    $("#node-title").textContent = `${watching[1]} on ${watching[0]}`;
    pending = []; $("#action-status").textContent = ""; $("#action-result").textContent = ""; $("#logs").textContent = "";
    $("#action-box").hidden = READ_ONLY; $("#load-logs").hidden = READ_ONLY;
    paramFields(); lastNodeLoad = 0; renderNode();
  }
}

$("#command").innerHTML = Object.keys(COMMANDS).map((c) => `<option>${c}</option>`).join("");
$("#command").addEventListener("change", paramFields);
$("#action").addEventListener("submit", (e) => { e.preventDefault(); run(formBody(), "result"); });
$("#load-logs").addEventListener("click", () => run({agent: watching[0], command: "logs", target: watching[1], params: {lines: 100}}, "logs"));
$("#filter").addEventListener("input", render);
$("#all").addEventListener("change", render);
$("#logout").addEventListener("click", async () => { await post("logout", {}); location.href = "./"; });
addEventListener("hashchange", route);
addEventListener("keydown", (e) => { if (e.key === "/" && document.activeElement.tagName !== "INPUT") { e.preventDefault(); $("#filter").focus(); } if (e.key === "Escape" && watching) location.hash = ""; });
route(); connect();
