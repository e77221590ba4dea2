// Peers and invites: make an invite (read-only or not) and copy it; remove a member after a
// confirmation (a revocation the whole mesh applies).
"use strict";

async function remove(p) {
  const name = p.name || p.node_id.slice(0, 12);
  if (!window.confirm(`Remove ${name} from the mesh? No node will accept it again.`)) return;
  try {
    await api("DELETE", `/api/peers/${encodeURIComponent(p.node_id)}`);
    notify(`${name} was removed from the mesh.`);
    await load();
  } catch (err) {
    notify(err.message, "bad");
  }
}

function renderPeer(p) {
  const tr = el("tr");
  tr.dataset.node = p.node_id;
  tr.append(el("td", p.connected ? "●" : "○", p.connected ? "online" : "offline"),
            el("td", p.name || "(unnamed)"), el("td", `${p.node_id.slice(0, 12)}…`, "mono"),
            el("td", p.read_only ? "read-only" : "read-write"), el("td", p.address || "–", "mono"),
            el("td"));
  tr.cells[2].title = p.node_id;
  tr.cells[5].append(button("Remove", () => remove(p), "remove danger"));
  return tr;
}

async function load() {
  try {
    const peers = await api("GET", "/api/peers");
    $("peer-rows").replaceChildren(...peers.map(renderPeer));
    $("no-peers").hidden = peers.length > 0;
  } catch (err) {
    notify(err.message, "bad");
  }
}

async function invite(event) {
  event.preventDefault();
  try {
    const made = await api("POST", "/api/invites", { read_only: $("invite-read-only").checked });
    $("invite-text").value = made.invite;
    $("invite-until").textContent = `${made.read_only ? "read-only, " : ""}until ${formatTime(made.expires)}`;
    $("invite-box").hidden = false;
    notify("Invite made.");
  } catch (err) {
    notify(err.message, "bad");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("invite-form").addEventListener("submit", invite);
  $("invite-copy").addEventListener("click", () => copyText($("invite-text").value, $("invite-text")));
  load();
  setInterval(load, 5000);
});
