// The file browser: /files?path=DIR lists one folder of the mesh (folders first), with
// breadcrumbs, sizes, modification times, a live badge and a download link per file.
"use strict";

function renderCrumbs(path) {
  const parts = path ? path.split("/") : [];
  const items = [el("li")];
  items[0].append(link("Root", "/files"));
  parts.forEach((part, i) => {
    const li = el("li");
    const sub = parts.slice(0, i + 1).join("/");
    li.append(i === parts.length - 1 ? el("span", part) : link(part, `/files?path=${encodeURIComponent(sub)}`));
    items.push(li);
  });
  $("crumbs").replaceChildren(...items);
}

function renderEntry(e) {
  const tr = el("tr");
  const name = el("td");
  if (e.kind === "dir") {
    name.append(link(`📁 ${e.name}`, `/files?path=${encodeURIComponent(e.path)}`, "entry dir"));
  } else if (e.kind === "symlink") {
    name.append(el("span", `↪ ${e.name}`, "entry link"));
  } else {
    name.append(link(e.name, `/file?path=${encodeURIComponent(e.path)}`, "entry file"));
    if (e.live) name.append(" ", el("span", "live", "badge busy"), " ",
                            link("edit", `/editor?path=${encodeURIComponent(e.path)}`, "edit-live"));
  }
  const actions = el("td");
  if (e.kind === "file") {
    const a = link("download", `/api/download?path=${encodeURIComponent(e.path)}`);
    a.setAttribute("download", e.name);
    actions.append(a);
  }
  tr.append(name, el("td", e.kind === "file" ? formatBytes(e.size) : "", "num"),
            el("td", e.mtime ? formatTime(e.mtime) : ""), actions);
  return tr;
}

async function load() {
  const path = query("path") || "";
  renderCrumbs(path);
  document.title = `${path || "Files"} · gossip-backer`;
  try {
    const entries = await api("GET", `/api/files?path=${encodeURIComponent(path)}`);
    entries.sort((a, b) => (a.kind === "dir" ? 0 : 1) - (b.kind === "dir" ? 0 : 1) || a.name.localeCompare(b.name));
    $("entries").replaceChildren(...entries.map(renderEntry));
    $("empty").hidden = entries.length > 0;
  } catch (err) {
    notify(err.message, "bad");
  }
}

document.addEventListener("DOMContentLoaded", load);
