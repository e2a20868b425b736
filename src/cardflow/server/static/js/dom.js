// DOM helpers. Every text goes in as a text node (never parsed as HTML), so nothing a page
// shows — upstream bodies, names, inputs — can become markup or script.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected") el[key] = true;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard.", "ok");
  } catch {
    toast("Could not copy: select the text and copy it by hand.", "error");
  }
}

export function copyButton(getText, label = "Copy") {
  return h("button", { type: "button", class: "btn btn-small", onclick: () => copyText(getText()) }, label);
}

export function badge(status) {
  const labels = {
    ready: "Ready", needs_authorization: "Needs authorization", error: "Error", rejected: "Rejected",
    succeeded: "Succeeded", failed: "Failed", running: "Running", skipped: "Skipped",
    interrupted: "Interrupted", enabled: "Enabled", disabled: "Disabled",
  };
  return h("span", { class: `badge badge-${String(status).replace(/[^a-z_]/g, "")}` }, labels[status] || status);
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function runDuration(run) {
  if (!run.started_at) return null;
  const end = run.ended_at ? new Date(run.ended_at) : new Date();
  return end - new Date(run.started_at);
}

// A modal <dialog>: focus moves into it, Escape closes it, focus returns afterwards.
export function modal(title, body, { actions = [], wide = false } = {}) {
  const titleId = nextId("dlg");
  const dialog = h("dialog", { class: wide ? "dialog dialog-wide" : "dialog", "aria-labelledby": titleId },
    h("div", { class: "dialog-head" },
      h("h2", { id: titleId }, title),
      h("button", { type: "button", class: "btn btn-quiet btn-icon", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
    h("div", { class: "dialog-body" }, body),
    actions.length ? h("div", { class: "dialog-actions" }, actions) : null);
  const opener = document.activeElement;
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.focus) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function confirmDialog(title, message, { confirmLabel = "Delete", danger = true } = {}) {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h("button", { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary", onclick: () => { answer = true; dialog.close(); } }, confirmLabel);
    const no = h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Cancel");
    const dialog = modal(title, h("p", {}, message), { actions: [no, yes] });
    dialog.addEventListener("close", () => resolve(answer));
    no.focus();
  });
}

export function emptyState(title, text, action) {
  return h("div", { class: "empty" }, h("h2", {}, title), h("p", {}, text), action || null);
}

export function pageHeader(title, subtitle, ...actions) {
  return h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "muted" }, subtitle) : null),
    h("div", { class: "page-actions" }, actions));
}

export function fieldError(field, message, holder = null) {
  const el = h("p", { class: "field-error", role: "alert" }, holder ? forField(message, field, holder) : message);
  if (field) el.dataset.errorFor = field;
  return el;
}

// What a required field left empty says, whether the form or the server noticed.
export function requiredMessage(label) {
  return `${label} is required.`;
}

// An error shown next to its field speaks of the field by its label, not its path:
// "Card 'ack': inputs.status_code: must be 200…" next to Status code reads
// "Status code: must be 200…"; "config.header_name: …" reads "Header name: …";
// "Card 'pick': inputs.object is required." reads "Object is required.". Next to its field
// the card is plain, so "Card 'x': " goes. A holder may name itself (data-label: a row).
export function forField(message, field, holder) {
  const labelled = holder.querySelector("label, .label") || holder.closest(".field")?.querySelector("label, .label");
  const label = holder.dataset.label || labelled?.textContent?.replace(/\s*\*\s*$/, "").trim();
  if (!label || !field) return message;
  const text = message.replace(/^Card '[^']*': /, "");
  const parts = field.split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const path = parts.slice(-n).join(".");
    if (text === `${path} is required.`) return requiredMessage(label);
    if (!text.startsWith(`${path}: `)) continue;
    const rest = text.slice(path.length + 2);
    return /^this field is required\.?$/.test(rest) ? requiredMessage(label) : `${label}: ${rest}`;
  }
  return text;
}
