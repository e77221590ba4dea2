// One file: its history (every version the mesh keeps), a restore button per version, and a
// side-by-side diff of any two versions.
"use strict";

const path = query("path") || "";

function shortId(id) { return id ? `${id.slice(0, 7)}…` : "–"; }

function radio(name, value, checked) {
  const r = el("input");
  r.type = "radio"; r.name = name; r.value = value; r.checked = checked;
  r.setAttribute("aria-label", `${name} ${value}`);
  return r;
}

async function restore(v) {
  if (!window.confirm(`Bring back the version of ${formatTime(v.time)} as the current ${path}?`)) return;
  try {
    const done = await api("POST", "/api/restore", { path, version: v.version });
    notify(`Restored: ${done.path} is now version ${done.version}; it spreads to the mesh.`);
    await load();
  } catch (err) {
    notify(err.message, "bad");
  }
}

function renderVersion(v, i) {
  const tr = el("tr");
  const left = el("td"); const right = el("td");
  if (!v.deleted) {
    left.append(radio("left", v.version, i === 1));
    right.append(radio("right", v.version, i === 0));
  }
  const action = el("td");
  if (i === 0) action.append(el("span", "current", "badge ok"));
  else if (!v.deleted) action.append(button("Restore", () => restore(v), "restore"));
  tr.append(left, right, el("td", formatTime(v.time)),
            el("td", v.deleted ? "deleted" : formatBytes(v.size), "num"),
            el("td", shortId(v.node_id), "mono"), el("td", v.version, "mono"), action);
  tr.cells[4].title = v.node_id;
  return tr;
}

function renderDiff(rows) {
  const out = rows.map((r) => {
    const tr = el("tr", null, `d-${r.kind}`);
    if (r.kind === "skip") {
      const td = el("td", `… ${r.count} unchanged line${r.count === 1 ? "" : "s"} …`, "skip");
      td.colSpan = 4;
      tr.append(td);
      return tr;
    }
    tr.append(el("td", r.left_no, "ln"), el("td", r.left, "code left"),
              el("td", r.right_no, "ln"), el("td", r.right, "code right"));
    return tr;
  });
  if (!out.length) out.push(el("tr"));
  $("diff").replaceChildren(...out);
  $("diff-section").hidden = false;
}

async function compare() {
  const left = document.querySelector("input[name=left]:checked");
  const right = document.querySelector("input[name=right]:checked");
  if (!left || !right) { notify("Pick a left and a right version.", "busy"); return; }
  try {
    const d = await api("GET", `/api/diff?path=${encodeURIComponent(path)}&left=${left.value}&right=${right.value}`);
    $("diff-title").textContent = `${left.value} → ${right.value}`;
    renderDiff(d.rows);
    if (!d.rows.some((r) => r.kind !== "same" && r.kind !== "skip")) notify("The two versions are identical.");
  } catch (err) {
    notify(err.message, "bad");
  }
}

async function load() {
  $("title").textContent = path;
  document.title = `${path} · gossip-backer`;
  const folder = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  $("folder-link").href = `/files?path=${encodeURIComponent(folder)}`;
  $("download").href = `/api/download?path=${encodeURIComponent(path)}`;
  try {
    const versions = await api("GET", `/api/history?path=${encodeURIComponent(path)}`);
    $("versions").replaceChildren(...versions.map(renderVersion));
  } catch (err) {
    notify(err.message, "bad");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("compare").addEventListener("click", compare);
  load();
});
