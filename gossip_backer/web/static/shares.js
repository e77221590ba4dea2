// Share links: make one (path, expiry, optional password), copy it, see its downloads, revoke it.
"use strict";

function expiresText(s) {
  if (!s.expires) return "never";
  return s.expired ? `expired ${formatTime(s.expires)}` : formatTime(s.expires);
}

async function revoke(s) {
  if (!window.confirm(`Revoke the link to ${s.path || "everything"}? It stops working on every node.`)) return;
  try {
    await api("DELETE", `/api/shares/${encodeURIComponent(s.token)}`);
    notify("Link revoked.");
    await load();
  } catch (err) {
    notify(err.message, "bad");
  }
}

function renderShare(s) {
  const tr = el("tr");
  tr.dataset.token = s.token;
  const where = el("td");
  if (s.url) {
    const input = el("input", null, "link-url");
    input.readOnly = true; input.value = s.url; input.setAttribute("aria-label", "Link");
    where.append(input, " ", button("Copy", () => copyText(s.url, input), "copy"));
  } else {
    where.append(el("span", "served once this node runs a web GUI or --public", "muted"));
  }
  const path = el("td", s.path || "(everything)", "mono");
  if (s.password) path.append(" ", el("span", "password", "badge"));
  tr.append(where, path, el("td", expiresText(s)), el("td", s.downloads, "num downloads"),
            el("td"));
  tr.cells[4].append(button("Revoke", () => revoke(s), "revoke danger"));
  return tr;
}

async function load() {
  try {
    const shares = await api("GET", "/api/shares");
    $("shares").replaceChildren(...shares.map(renderShare));
    $("no-shares").hidden = shares.length > 0;
  } catch (err) {
    notify(err.message, "bad");
  }
}

async function create(event) {
  event.preventDefault();
  const body = { path: $("share-path").value.trim() };
  if ($("share-expires").value) body.expires = Number($("share-expires").value);
  if ($("share-password").value) body.password = $("share-password").value;
  try {
    const made = await api("POST", "/api/shares", body);
    $("share-password").value = "";
    notify(`Link created: ${made.url || made.token}`);
    await load();
  } catch (err) {
    notify(err.message, "bad");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const preset = query("path");
  if (preset !== null) $("share-path").value = preset;
  $("share-form").addEventListener("submit", create);
  load();
  setInterval(load, 5000);
});
