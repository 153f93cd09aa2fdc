// Inbox keyboard shortcuts (j/k move, a approve, r reject, x select, Enter open) and bulk
// selection. Everything else is htmx attributes in the templates.
(function () {
  "use strict";
  let cursor = -1;

  function rows() { return Array.from(document.querySelectorAll("#inbox-table tr.task:not(.done)")); }

  function move(delta) {
    const all = rows();
    if (!all.length) return;
    cursor = Math.max(0, Math.min(all.length - 1, cursor + delta));
    all.forEach((r, i) => r.classList.toggle("cursor", i === cursor));
    all[cursor].scrollIntoView({ block: "nearest" });
  }

  function current() { const all = rows(); return all[cursor] || null; }

  function updateBulk() {
    const boxes = document.querySelectorAll("#rows input[name=task_ids]:checked");
    const button = document.getElementById("bulk-approve");
    const label = document.getElementById("selected-count");
    if (button) button.disabled = boxes.length === 0;
    if (label) label.textContent = boxes.length ? boxes.length + " selected" : "";
  }

  document.addEventListener("keydown", function (e) {
    if (!document.getElementById("inbox-table")) return;
    const tag = (e.target && e.target.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || e.metaKey || e.ctrlKey || e.altKey) return;
    const row = current();
    if (e.key === "j") { move(1); e.preventDefault(); }
    else if (e.key === "k") { move(-1); e.preventDefault(); }
    else if (e.key === "a" && row) { row.querySelector("[data-action=approve]").click(); e.preventDefault(); }
    else if (e.key === "r" && row) {
      const details = row.querySelector("details.more");
      details.open = true; details.querySelector("textarea").focus(); e.preventDefault();
    }
    else if (e.key === "x" && row) {
      const box = row.querySelector("input[name=task_ids]"); box.checked = !box.checked; updateBulk();
    }
    else if (e.key === "Enter" && row) { window.location = row.dataset.href; }
  });

  document.addEventListener("change", function (e) {
    if (e.target.id === "select-all") {
      document.querySelectorAll("#rows input[name=task_ids]").forEach(b => { b.checked = e.target.checked; });
    }
    if (e.target.name === "task_ids" || e.target.id === "select-all") updateBulk();
  });

  document.addEventListener("htmx:afterSwap", function () { cursor = Math.min(cursor, rows().length - 1); updateBulk(); });
})();
