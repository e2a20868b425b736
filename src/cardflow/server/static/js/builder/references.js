// "Insert reference": the trigger's and earlier cards' outputs a card input may refer to.
import { insideJsonString, samplePaths } from "../card-inputs.js";
import { h, toast } from "../dom.js";
import { sampleTrigger } from "./trigger.js";

// The cards a card may refer to: those before it, and before the card that holds it.
// A place is where a step is drawn: {step, index, list, path, earlier, loop, number}.
export function visibleBefore(place) { return [...place.earlier, ...place.list.slice(0, place.index)]; }

export function referenceOptions(state, place, values = new Map()) {
  const groups = [];
  const trigger = ["trigger.body", "trigger.query", "trigger.headers", "trigger.raw", "trigger.method"];
  const sample = sampleTrigger(state).body;
  values.set("trigger.body", sample);
  const deeper = [];
  samplePaths("trigger.body", sample, 0, deeper, values);
  groups.push(["Trigger", [...trigger.slice(0, 1), ...deeper, ...trigger.slice(1)]]);
  if (place.loop) groups.push(["Loop (For Each)", ["loop.item", "loop.index"]]);
  visibleBefore(place).forEach((step) => {
    const spec = state.specs[step.card];
    const base = `steps.${step.id}`;
    const paths = (spec?.outputs || []).filter((o) => /^[a-z_]+$/.test(o)).map((o) => `${base}.${o}`);
    if (!paths.length) paths.push(base);
    const last = state.testResults.get(step);
    if (last?.outputs) {
      const found = [];
      values.set(base, last.outputs);
      samplePaths(base, last.outputs, 0, found, values);
      for (const p of found) if (!paths.includes(p)) paths.push(p);
    }
    groups.push([`${step.id} — ${spec?.title || step.card}`, paths]);
  });
  return groups;
}

// A value as one short line of text (what a reference would give).
function valueText(value) {
  if (value === undefined) return "";
  const text = typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

// A button opening a list of the references (fresh each time, so new test outputs show).
// Enter or a click inserts; Escape closes. A listbox acts only on an explicit choice:
// arrowing through it inserts nothing.
// {{ path }} goes in at the control's cursor. In JSON it goes in as a string of its own, or
// into the string the cursor is in (escaped, without quotes); alone it keeps the value's type.
export function insertReference(control, kind, path) {
  const expression = `{{ ${path} }}`;
  const current = control.value;
  const start = control.selectionStart ?? current.length;
  const end = control.selectionEnd ?? current.length;
  let text = expression;
  if (kind === "json" && current.trim() !== "") {
    text = insideJsonString(current, start) ? JSON.stringify(expression).slice(1, -1) : JSON.stringify(expression);
  }
  control.value = current.slice(0, start) + text + current.slice(end);
  control.dispatchEvent(new Event("input", { bubbles: true }));
  control.focus();
  control.setSelectionRange?.(start + text.length, start + text.length);
}

// The card input a reference clicked in a test output goes into: the last one focused that
// takes references (tracked from the page root).
export function trackReferenceTargets(state) {
  state.root.addEventListener("focusin", (event) => {
    if (event.target instanceof HTMLElement && event.target.dataset.refKind) state.lastInput = event.target;
  });
}

// A key clicked in a card's test output (source: that card's panel): its reference goes into
// the last input focused in a later card; with none, it is copied to the clipboard.
export function pickReference(state, source, path) {
  const target = state.lastInput;
  const later = target?.isConnected && source && !source.contains(target)
    && Boolean(source.compareDocumentPosition(target) & Node.DOCUMENT_POSITION_FOLLOWING);
  if (!later) {
    const advice = "To insert it, click into an input of a later card, then click the key again.";
    navigator.clipboard.writeText(`{{ ${path} }}`).then(
      () => toast(`Copied {{ ${path} }}. ${advice}`, "ok"),
      () => toast(advice, "info"));
    return;
  }
  insertReference(target, target.dataset.refKind, path);
}

// compact: the button shows "{ }" only (a row's value).
export function referencePicker(state, control, kind, place, label, { compact = false } = {}) {
  control.dataset.refKind = kind;
  const listId = `${control.id}-refs`;
  const button = h("button", {
    type: "button", class: "ref-button", id: `${control.id}-ref`, "aria-haspopup": "listbox",
    "aria-expanded": "false", "aria-controls": listId, "aria-label": `Insert a reference into ${label}`,
    title: "Insert a reference to the trigger or an earlier card's output",
  }, compact ? "{ }" : "{ } Insert reference");
  const wrap = h("div", { class: "ref" }, button);
  let list = null;
  const close = (refocus) => {
    list?.remove();
    list = null;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  };
  const insert = (path) => {
    insertReference(control, kind, path);
    close(false);
  };
  button.addEventListener("click", () => {
    if (list) { close(true); return; }
    const values = new Map();
    const groups = referenceOptions(state, place, values);
    const select = h("select", { id: listId, class: "ref-list", size: 10, "aria-label": `References for ${label}`, "aria-describedby": `${listId}-value` });
    const search = h("input", { type: "search", class: "ref-search", id: `${listId}-search`, placeholder: "Search references…", "aria-label": `Search references for ${label}`, autocomplete: "off", spellcheck: "false" });
    const preview = h("p", { class: "ref-value muted small", id: `${listId}-value`, "aria-live": "polite" });
    // the options matching the search (path or value, any case)
    const fill = () => {
      const needle = search.value.trim().toLowerCase();
      const scalar = (value) => value !== null && value !== undefined && typeof value !== "object";
      const shows = (path) => !needle || path.toLowerCase().includes(needle)
        || (scalar(values.get(path)) && valueText(values.get(path)).toLowerCase().includes(needle));
      select.replaceChildren(...groups.map(([group, paths]) => [group, paths.filter(shows)]).filter(([, paths]) => paths.length)
        .map(([group, paths]) => h("optgroup", { label: group }, paths.map((p) => h("option", { value: p }, p)))));
    };
    // what the highlighted reference gave in the last test (or the test data)
    const show = (path) => {
      preview.textContent = path && values.has(path) ? `Last test: ${path} = ${valueText(values.get(path))}` : "";
    };
    fill();
    search.addEventListener("input", () => { fill(); show(null); });
    search.addEventListener("keydown", (event) => {
      const first = select.querySelector("option");
      if (event.key === "ArrowDown" && first) { event.preventDefault(); select.focus(); select.value = first.value; show(first.value); }
      if (event.key === "Enter") { event.preventDefault(); if (first) insert(first.value); }
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(true); }
    });
    select.addEventListener("change", () => show(select.value));
    select.addEventListener("mouseover", (event) => { if (event.target instanceof HTMLOptionElement) show(event.target.value); });
    select.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && select.value) { event.preventDefault(); insert(select.value); }
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(true); }
      if (event.key === "Tab") close(false);
    });
    select.addEventListener("click", () => { if (select.value) insert(select.value); });
    list = h("div", { class: "ref-panel" }, search, select, preview);
    list.addEventListener("focusout", () => setTimeout(() => { if (list && !list.contains(document.activeElement)) close(false); }, 200));
    wrap.append(list);
    button.setAttribute("aria-expanded", "true");
    search.focus();
  });
  return wrap;
}
