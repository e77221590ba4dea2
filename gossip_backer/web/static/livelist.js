// The dashboard's "Live notes" card: the files that are live on this node (GET /api/live), each
// a link to the editor page. Hidden while there is none.
async function loadLiveNotes() {
  const card = $("live-card");
  if (!card) return;
  try {
    const live = await api("GET", "/api/live");
    $("live-notes").replaceChildren(...live.files.map((path) => {
      const item = el("li");
      item.append(link(path, `/editor?path=${encodeURIComponent(path)}`, "live-note"));
      return item;
    }));
    card.hidden = live.files.length === 0;
  } catch (err) {
    card.hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  loadLiveNotes();
  setInterval(loadLiveNotes, 5000);
});
