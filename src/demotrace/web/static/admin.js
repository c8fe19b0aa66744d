// demotrace collector admin pages: confirmation before a destructive form, and the progress of
// running dataset builds (polled while one is queued or running; the page reloads when one ends).
"use strict";
(() => {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  const table = document.getElementById("builds");
  if (!table) return;
  const busy = (state) => state === "queued" || state === "running";
  const pending = () => [...table.querySelectorAll("tr[data-build]")].some((tr) => busy(tr.dataset.state));
  if (!pending()) return;
  const poll = async () => {
    let rows;
    try {
      const answer = await fetch(table.dataset.poll, { credentials: "same-origin" });
      if (!answer.ok) throw new Error(String(answer.status));
      rows = await answer.json();
    } catch (err) {
      window.setTimeout(poll, 5000);
      return;
    }
    let ended = false;
    for (const b of rows) {
      const tr = document.getElementById(b.id);
      if (!tr) continue;
      if (busy(tr.dataset.state) && !busy(b.state)) ended = true;
      const bar = tr.querySelector("progress");
      if (bar) { bar.max = Math.max(b.total_sessions, 1); bar.value = b.done_sessions; }
      const n = tr.querySelector(".sessions");
      if (n) n.textContent = `${b.done_sessions} / ${b.total_sessions}`;
      const state = tr.querySelector(".state");
      if (state && busy(b.state)) state.textContent = b.state;
    }
    if (ended) { window.location.reload(); return; }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
})();
