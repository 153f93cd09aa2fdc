// Inbox keyboard shortcuts (j/k move, a approve, r reject, x select, Enter open), bulk
// selection, and the poll that keeps the rows and counts current. Everything else is htmx
// attributes in the templates.
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

  // When the rows are swapped (the poll, a filter, bulk approve), keep what the person was
  // doing: ticked boxes, the j/k cursor, an open Reject box with its comment, the focus, and
  // the confirmations of their own decisions.
  let kept = null;

  function snapshot(box) {
    const focused = box.contains(document.activeElement) ? document.activeElement : null;
    const focusRow = focused && focused.closest("tr[data-task]");
    const cursorRow = current();
    return {
      checked: Array.from(box.querySelectorAll("input[name=task_ids]:checked")).map(b => b.value),
      cursor: cursorRow ? cursorRow.dataset.task : null,
      open: Array.from(box.querySelectorAll("tr[data-task] details.more[open]")).map(d => ({
        task: d.closest("tr").dataset.task, text: d.querySelector("textarea").value })),
      focus: focusRow ? { task: focusRow.dataset.task, selector: focusSelector(focused) } : null,
      done: Array.from(box.querySelectorAll("tr.task.done")).map(r => ({
        row: r, index: Array.from(r.parentNode.children).indexOf(r) })),
    };
  }

  function focusSelector(el) {
    if (el.dataset.action) return "[data-action=" + el.dataset.action + "]";
    if (el.name) return "[name=" + el.name + "]";
    if (el.tagName === "A") return "a";
    return null;
  }

  function restore(box, s) {
    const byTask = id => box.querySelector('tr[data-task="' + CSS.escape(id) + '"]');
    const tbody = box.querySelector("#inbox-table tbody");
    s.done.forEach(function (d) {  // a row the person just decided stays where it was
      if (!tbody || byTask(d.row.dataset.task)) return;
      tbody.insertBefore(d.row, tbody.children[d.index] || null);
    });
    s.checked.forEach(function (id) {
      const row = byTask(id);
      const b = row && row.querySelector("input[name=task_ids]");
      if (b) b.checked = true;
    });
    s.open.forEach(function (o) {
      const row = byTask(o.task);
      const d = row && row.querySelector("details.more");
      if (d) { d.open = true; d.querySelector("textarea").value = o.text; }
    });
    const all = rows();
    cursor = s.cursor ? all.findIndex(r => r.dataset.task === s.cursor) : Math.min(cursor, all.length - 1);
    all.forEach((r, i) => r.classList.toggle("cursor", i === cursor));
    if (s.focus && s.focus.selector) {
      const row = byTask(s.focus.task);
      const el = row && row.querySelector(s.focus.selector);
      if (el) el.focus({ preventScroll: true });
    }
  }

  // A form marked data-reset-after empties itself once its htmx request succeeded (the
  // proposal builder's "write a section": the section is in the list, the form is free).
  document.addEventListener("htmx:afterRequest", function (e) {
    const form = e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("form[data-reset-after]");
    if (form && e.detail.successful) form.reset();
  });

  document.addEventListener("htmx:beforeSwap", function (e) {
    if (e.detail.shouldSwap && e.detail.target && e.detail.target.id === "rows") kept = snapshot(e.detail.target);
  });

  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target && e.detail.target.id === "rows" && kept) { restore(e.detail.target, kept); kept = null; }
    else cursor = Math.min(cursor, rows().length - 1);
    updateBulk();
  });

  // The poll: only while the page is visible and no request of the page is on its way (a
  // decision's answer must find its row). htmx marks a requesting element .htmx-request.
  function idle() { return document.visibilityState === "visible" && !document.querySelector(".htmx-request"); }

  function startPoll() {
    const poller = document.getElementById("inbox-poll");
    if (!poller || !window.htmx) return;
    const every = 1000 * Number(poller.dataset.pollSeconds || 5);
    setInterval(function () {
      if (idle()) htmx.trigger(poller, "inbox-poll");
    }, every);
    document.addEventListener("visibilitychange", function () { if (idle()) htmx.trigger(poller, "inbox-poll"); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startPoll);
  else startPoll();
})();

// Envelopes: the new-envelope form's recipient rows (add, remove, show the access-code box
// only when it is needed, refuse an over-size file before uploading it), the signature pad
// on the signing page, and "Signing…" on the sign buttons. Without JS the form has four
// blank rows, every field shows, and nobody draws (the typed name is the signature).
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  function syncRow(row) {
    const auth = row.querySelector("[data-auth]");
    const code = row.querySelector(".f-code");
    if (!auth || !code) return;
    const off = auth.value !== "access_code";
    code.classList.toggle("off", off);
    code.querySelector("input").disabled = off;
  }

  function renumber(box) {
    const rows = box.querySelectorAll("[data-row]");
    rows.forEach(function (row, i) {
      const n = row.querySelector(".rnum");
      if (n) n.textContent = String(i + 1);
      const rm = row.querySelector("[data-remove-row]");
      if (rm) rm.hidden = rows.length <= 1;
    });
  }

  function envelopeForm() {
    const form = document.getElementById("envelope-form");
    if (!form) return;
    const box = document.getElementById("recipient-rows");
    const tpl = document.getElementById("recipient-template");
    const add = document.getElementById("add-recipient");
    box.querySelectorAll("[data-row]").forEach(syncRow);
    renumber(box);
    if (add && tpl) {
      add.hidden = false;
      add.addEventListener("click", function () {
        const rows = box.querySelectorAll("[data-row]");
        if (rows.length >= 50) return;
        const row = tpl.content.firstElementChild.cloneNode(true);
        const last = rows[rows.length - 1];
        const order = last && last.querySelector("input[name=r_order]").value;
        row.querySelector("input[name=r_order]").value = order || "1";
        box.appendChild(row);
        syncRow(row);
        renumber(box);
        row.querySelector("input[name=r_name]").focus();
      });
    }
    box.addEventListener("change", function (e) {
      const row = e.target.closest("[data-row]");
      if (row && e.target.matches("[data-auth]")) syncRow(row);
    });
    box.addEventListener("click", function (e) {
      const button = e.target.closest("[data-remove-row]");
      if (!button) return;
      button.closest("[data-row]").remove();
      renumber(box);
    });
    const file = form.querySelector("input[type=file][data-max-bytes]");
    if (file) {
      file.addEventListener("change", function () {
        const max = Number(file.dataset.maxBytes);
        const f = file.files && file.files[0];
        file.setCustomValidity(f && f.size > max
          ? f.name + " is " + (f.size / 1048576).toFixed(1) + " MB; the limit is "
            + Math.round(max / 1048576) + " MB: choose a smaller file." : "");
        file.reportValidity();
      });
    }
  }

  function signaturePad(pad) {
    const canvas = pad.querySelector("canvas");
    const field = pad.querySelector("input[name=drawing]");
    const form = pad.closest("form");
    const ctx = canvas.getContext("2d");
    let drawn = false;
    let last = null;
    pad.hidden = false;

    function fit() {
      if (drawn) return;  // resizing a canvas wipes it: keep what was drawn
      const ratio = Math.min(window.devicePixelRatio || 1, 2);
      canvas.width = Math.round(canvas.clientWidth * ratio);
      canvas.height = Math.round(canvas.clientHeight * ratio);
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.lineWidth = 2.4;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = ctx.fillStyle = "#1d2a5b";
    }
    function at(e) {
      const box = canvas.getBoundingClientRect();
      return { x: e.clientX - box.left, y: e.clientY - box.top };
    }
    fit();
    window.addEventListener("resize", fit);
    canvas.addEventListener("pointerdown", function (e) {
      canvas.setPointerCapture(e.pointerId);
      last = at(e);
      ctx.beginPath();
      ctx.arc(last.x, last.y, 1.2, 0, Math.PI * 2);
      ctx.fill();
      drawn = true;
      pad.classList.add("drawn");
      e.preventDefault();
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!last) return;
      const p = at(e);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
      last = p;
      e.preventDefault();
    });
    ["pointerup", "pointercancel"].forEach(function (type) {
      canvas.addEventListener(type, function () { last = null; });
    });
    pad.querySelector("[data-sigpad-clear]").addEventListener("click", function () {
      drawn = false;
      pad.classList.remove("drawn");
      field.value = "";
      fit();
    });
    form.addEventListener("submit", function () {
      field.value = drawn ? canvas.toDataURL("image/png") : "";
    });
  }

  ready(function () {
    envelopeForm();
    document.querySelectorAll("[data-sigpad]").forEach(signaturePad);
    document.querySelectorAll("form.sign-form").forEach(function (form) {
      form.addEventListener("submit", function () {
        const button = form.querySelector("button[type=submit], button:not([type])");
        if (!button || form.dataset.busy) return;
        const label = button.textContent;
        form.dataset.busy = "1";
        setTimeout(function () { button.disabled = true; button.textContent = "Signing…"; }, 0);
        form.addEventListener("htmx:afterRequest", function () {  // an error: try again
          delete form.dataset.busy;
          button.disabled = false;
          button.textContent = label;
        }, { once: true });
      });
    });
  });
})();

// Form fields checked as the person types: a field the browser finds invalid (out of range,
// not a number) shows its data-invalid message in its slot (aria-describedby) and is marked
// aria-invalid; fixing it clears both. In the quote builder, Add stays disabled while a field
// is invalid or the rules block it (data-rules-block). The server checks everything again.
// After htmx swaps a form, focus goes back where it was, or to the field in error.
(function () {
  "use strict";

  function slotOf(input) {
    const id = input.getAttribute("aria-describedby");
    return id ? document.getElementById(id) : null;
  }

  function check(input) {
    const slot = slotOf(input);
    if (!input.checkValidity()) {
      input.setAttribute("aria-invalid", "true");
      if (slot) { slot.textContent = input.dataset.invalid; slot.hidden = false; }
    } else if (input.hasAttribute("aria-invalid")) {
      input.removeAttribute("aria-invalid");
      if (slot) { slot.textContent = ""; slot.hidden = true; }
    }
  }

  function syncAdd(form) {
    const add = form.querySelector("[data-add]");
    if (!add) return;
    const fields = form.querySelector("[aria-invalid=true]");
    const rules = add.hasAttribute("data-rules-block");
    add.disabled = Boolean(fields) || rules;
    const preview = form.querySelector("[data-preview]");  // prices for other numbers
    if (preview) preview.hidden = Boolean(fields);
    const note = document.getElementById(add.getAttribute("aria-describedby"));
    if (note) {
      note.hidden = !add.disabled;
      note.textContent = fields ? "Fix the highlighted fields to add it."
        : "Fix the rule problems above to add it.";
    }
  }

  document.addEventListener("input", function (e) {
    const input = e.target;
    if (!(input instanceof HTMLInputElement) || !input.matches("[data-invalid]")) return;
    check(input);
    if (input.form) syncAdd(input.form);
  });

  function selectorOf(el) {
    if (el.id) return "#" + CSS.escape(el.id);
    if (el.getAttribute("name")) return '[name="' + CSS.escape(el.getAttribute("name")) + '"]';
    if (el.hasAttribute("data-add")) return "[data-add]";
    return null;
  }

  // Where the focus was when the request left (a form whose fields are disabled while it
  // is answered, hx-disabled-elt, has lost it by the time the answer is swapped in).
  let focus = null;
  // By request (its xhr), and taken to wherever the answer goes (a 422 is retargeted).
  const asked = new WeakMap();
  function focusIn(target) {
    const el = document.activeElement;
    return target && target.id && target.id !== "rows" && el && el !== document.body && target.contains(el)
      ? { region: target.id, selector: selectorOf(el) } : null;
  }
  document.addEventListener("htmx:beforeRequest", function (e) {
    const where = focusIn(e.detail.target);
    if (where && e.detail.xhr) asked.set(e.detail.xhr, where);
  });
  document.addEventListener("htmx:beforeSwap", function (e) {
    const target = e.detail.target;
    const before = e.detail.xhr && asked.get(e.detail.xhr);
    focus = focusIn(target)
      || (before && target && target.id ? { region: target.id, selector: before.selector } : null);
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focus) return;
    const region = document.getElementById(focus.region);
    const lost = !document.activeElement || document.activeElement === document.body;
    if (region && lost) {
      const el = region.querySelector("[aria-invalid=true]")
        || (focus.selector && region.querySelector(focus.selector));
      if (el) el.focus({ preventScroll: true });
    }
    focus = null;
  });
})();

// RFP workspace: j/k (or the arrow keys) move between questions, Enter edits the answer, Esc
// leaves it; "Use" fills the answer with a library suggestion (saved with the Save button).
(function () {
  "use strict";
  let cursor = -1;

  function questions() { return Array.from(document.querySelectorAll("#questions .rfp-question")); }

  function move(delta) {
    const all = questions();
    if (!all.length) return;
    cursor = Math.max(0, Math.min(all.length - 1, cursor + delta));
    all.forEach((q, i) => q.classList.toggle("cursor", i === cursor));
    all[cursor].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (e) {
    if (!document.getElementById("questions")) return;
    const tag = (e.target && e.target.tagName) || "";
    if (e.key === "Escape" && tag === "TEXTAREA") { e.target.blur(); return; }
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || e.metaKey || e.ctrlKey || e.altKey) return;
    if (e.key === "j" || e.key === "ArrowDown") { move(1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp") { move(-1); e.preventDefault(); }
    else if (e.key === "Enter" && cursor >= 0) {
      const box = questions()[cursor] && questions()[cursor].querySelector("textarea");
      if (box) { box.focus(); e.preventDefault(); }
    }
  });

  document.addEventListener("click", function (e) {
    const use = e.target.closest && e.target.closest("[data-use]");
    if (!use) return;
    const form = use.closest("form");
    form.querySelector("textarea[name=text]").value = use.dataset.text;
    form.querySelector("input[name=library_item_id]").value = use.dataset.use;
    form.querySelector("textarea[name=text]").focus();
  });

  // A swapped question keeps the cursor where it was.
  document.addEventListener("htmx:afterSettle", function () {
    const all = questions();
    if (cursor >= 0 && all[cursor]) all[cursor].classList.add("cursor");
  });
})();
