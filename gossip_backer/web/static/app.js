// The dashboard: /api/status every 2 s, /api/events as a live list. Data only ever goes into
// textContent, never into HTML.
"use strict";

const REFRESH_MS = 2000;
const MAX_EVENTS = 200;

// ($, el and formatBytes come from common.js, loaded first.)

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function formatAgo(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return "never";
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(unixSeconds * 1000).toLocaleString();
}

function setBadge(node, text, kind) {
  node.textContent = text;
  node.className = `badge ${kind}`;
}

// -- status -------------------------------------------------------------------------------
function renderStatus(s) {
  $("node-name").textContent = s.name || "gossip-backer";
  document.title = `${s.name || "node"} · gossip-backer`;
  $("node-id").textContent = s.node_id;
  $("mesh-id").textContent = s.mesh_id;
  $("listen").textContent = s.listen || "–";

  const problems = s.problems || [];
  const blocking = problems.find((p) => ["paused", "invite", "removed"].includes(p.kind));
  if (s.paused) setBadge($("sync-state"), "Paused", "bad");
  else if (s.disk_full) setBadge($("sync-state"), "Disk full", "bad");
  else if (blocking) setBadge($("sync-state"), "Not mirroring", "bad");
  else if (s.in_sync) setBadge($("sync-state"), "In sync", "ok");
  else setBadge($("sync-state"), "Syncing", "busy");
  // Each problem with what to do about it (runtime/problems.py), as text nodes only.
  $("problems").replaceChildren(...problems.map((p) => {
    const li = el("li", p.message, "problem");
    li.append(el("div", `What to do: ${p.action}`, "action"));
    return li;
  }));
  $("problems-card").hidden = problems.length === 0;
  $("files").textContent = s.files;
  $("bytes").textContent = formatBytes(s.bytes);
  $("pending").textContent = s.pending_files
    ? `${plural(s.pending_files, "file")}, ${formatBytes(s.pending_bytes)}` : "nothing";

  // The overall bar: bytes done of the backlog's total, rate, time left (runtime/progress.py).
  const p = s.progress;
  $("progress-bar").max = p ? Math.max(p.total_bytes, 1) : 1;
  $("progress-bar").value = p ? p.done_bytes : (s.in_sync ? 1 : 0);
  $("progress").textContent = p
    ? `${formatBytes(p.done_bytes)} of ${formatBytes(p.total_bytes)}, ${formatBytes(p.rate)}/s` +
      (p.eta === null ? "" : `, ${Math.ceil(p.eta)} s left`)
    : (s.in_sync ? "done" : "–");

  $("bytes-in").textContent = formatBytes(s.net.bytes_in);
  $("bytes-out").textContent = formatBytes(s.net.bytes_out);

  $("conflicts").replaceChildren(...s.conflicts.map((path) => el("li", path)));
  $("no-conflicts").hidden = s.conflicts.length > 0;

  renderPeers(s.peers);
}

function renderPeers(peers) {
  const rows = peers.map((p) => {
    const tr = el("tr");
    const dot = el("td", p.connected ? "●" : "○", p.connected ? "online" : "offline");
    dot.title = p.connected ? "connected" : "not connected";
    tr.append(
      dot,
      el("td", p.name || "(unnamed)"),
      el("td", p.node_id.slice(0, 12) + "…", "mono"),
      el("td", p.read_only ? "read-only" : "read-write"),
      el("td", p.address || "–", "mono"),
      el("td", p.connected ? "now" : formatAgo(p.last_seen)),
    );
    tr.cells[2].title = p.node_id;
    return tr;
  });
  $("peers").replaceChildren(...rows);
  $("no-peers").hidden = peers.length > 0;
  const online = peers.filter((p) => p.connected).length;
  $("peers-online").textContent = `${online} of ${peers.length} online`;
}

async function refresh() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    renderStatus(await response.json());
    setBadge($("reachable"), "running", "ok");
  } catch (err) {
    setBadge($("reachable"), `node unreachable (${err.message})`, "bad");
  }
}

// -- events -------------------------------------------------------------------------------
function describe(event) {
  const { type, time, ...fields } = event;
  return Object.entries(fields)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join("  ");
}

function addEvent(event) {
  const when = new Date((event.time || Date.now() / 1000) * 1000);
  const li = el("li");
  li.append(
    el("time", when.toLocaleTimeString()),
    el("span", event.type, `type ${event.type}`),
    el("span", describe(event), "fields"),
  );
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function listen() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("events-state").textContent = "live"; };
  source.onerror = () => { $("events-state").textContent = "reconnecting…"; };
  source.onmessage = (message) => {
    try { addEvent(JSON.parse(message.data)); } catch (err) { console.warn(err); }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  refresh();
  setInterval(refresh, REFRESH_MS);
  listen();
});
