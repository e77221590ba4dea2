// Conflicts: each conflict copy beside the version the mesh kept, their text diff, and the
// choices. The node carries a choice out on its disk; the scan publishes it like any change.
"use strict";

function diffTable(rows) {
  const table = el("table", null, "diff");
  const body = el("tbody");
  body.append(...rows.map((r) => {
    const tr = el("tr", null, `d-${r.kind}`);
    if (r.kind === "skip") {
      const td = el("td", `… ${r.count} unchanged line${r.count === 1 ? "" : "s"} …`, "skip");
      td.colSpan = 4;
      tr.append(td);
    } else {
      tr.append(el("td", r.left_no, "ln"), el("td", r.left, "code left"),
                el("td", r.right_no, "ln"), el("td", r.right, "code right"));
    }
    return tr;
  }));
  table.append(body);
  return table;
}

async function choose(c, keep) {
  const what = { original: `keep ${c.original} as it is and delete the copy`,
                 copy: `replace ${c.original} with the copy`,
                 both: "keep both files (the copy gets an ordinary name)" }[keep];
  if (!window.confirm(`Resolve: ${what}?`)) return;
  try {
    await api("POST", "/api/conflicts", { path: c.path, keep });
    notify(`Resolved ${c.original}: the change spreads to the mesh.`);
    await load();
  } catch (err) {
    notify(err.message, "bad");
  }
}

async function renderConflict(c) {
  const card = el("article", null, "card conflict");
  card.dataset.path = c.path;
  const head = el("h2");
  head.append(link(c.original, `/file?path=${encodeURIComponent(c.original)}`));
  const facts = el("p", `Conflict copy ${c.path}, made on node ${c.node_id} at ${formatTime(c.time)}.`, "muted");
  const sides = el("div", null, "sides");
  const left = el("div", null, "side");
  left.append(el("h3", "Kept at the path (winner)"), el("p", c.original, "mono"),
              button("Keep this one", () => choose(c, "original"), "keep-original"));
  const right = el("div", null, "side");
  right.append(el("h3", "Conflict copy"), el("p", c.path, "mono"),
               button("Keep this one", () => choose(c, "copy"), "keep-copy"));
  sides.append(left, right);
  card.append(head, facts, sides);
  try {
    const d = await api("GET", `/api/diff?path=${encodeURIComponent(c.original)}&other=${encodeURIComponent(c.path)}`);
    card.append(diffTable(d.rows));
  } catch (err) {
    card.append(el("p", err.message, "muted"));
  }
  card.append(button("Keep both", () => choose(c, "both"), "keep-both"));
  return card;
}

async function load() {
  try {
    const conflicts = await api("GET", "/api/conflicts");
    const cards = await Promise.all(conflicts.map(renderConflict));
    $("conflict-cards").replaceChildren(...cards);
    $("none").hidden = conflicts.length > 0;
  } catch (err) {
    notify(err.message, "bad");
  }
}

document.addEventListener("DOMContentLoaded", load);
