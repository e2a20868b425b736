// "Insert reference": the trigger's and earlier cards' outputs a card input may refer to.
import { samplePaths } from "../card-inputs.js";
import { h } from "../dom.js";
import { sampleTrigger } from "./trigger.js";

// The cards a card may refer to: those before it, and before the card that holds it.
// A place is where a step is drawn: {step, index, list, path, earlier, loop, number}.
export function visibleBefore(place) { return [...place.earlier, ...place.list.slice(0, place.index)]; }

export function referenceOptions(state, place) {
  const groups = [];
  const trigger = ["trigger.body", "trigger.query", "trigger.headers", "trigger.raw", "trigger.method"];
  const sample = sampleTrigger(state).body;
  const deeper = [];
  samplePaths("trigger.body", sample, 0, deeper);
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
      samplePaths(base, last.outputs, 0, found);
      for (const p of found) if (!paths.includes(p)) paths.push(p);
    }
    groups.push([`${step.id} — ${spec?.title || step.card}`, paths]);
  });
  return groups;
}

// A button opening a list of the references (fresh each time, so new test outputs show).
// Enter or a click inserts; Escape closes. A listbox acts only on an explicit choice:
// arrowing through it inserts nothing.
export function referencePicker(state, control, kind, place, label) {
  const listId = `${control.id}-refs`;
  const button = h("button", {
    type: "button", class: "ref-button", id: `${control.id}-ref`, "aria-haspopup": "listbox",
    "aria-expanded": "false", "aria-controls": listId, "aria-label": `Insert a reference into ${label}`,
    title: "Insert a reference to the trigger or an earlier card's output",
  }, "{ } Insert reference");
  const wrap = h("div", { class: "ref" }, button);
  let list = null;
  const close = (refocus) => {
    list?.remove();
    list = null;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  };
  const insert = (path) => {
    const expression = `{{ ${path} }}`;
    const current = control.value;
    // inside JSON the expression goes in as a string; alone it keeps the value's type
    const text = kind === "json" && current.trim() !== "" ? JSON.stringify(expression) : expression;
    const start = control.selectionStart ?? current.length;
    const end = control.selectionEnd ?? current.length;
    control.value = current.slice(0, start) + text + current.slice(end);
    control.dispatchEvent(new Event("input", { bubbles: true }));
    close(false);
    control.focus();
    control.setSelectionRange?.(start + text.length, start + text.length);
  };
  button.addEventListener("click", () => {
    if (list) { close(true); return; }
    list = h("select", { id: listId, class: "ref-list", size: 10, "aria-label": `References for ${label}` },
      referenceOptions(state, place).map(([group, paths]) => h("optgroup", { label: group }, paths.map((p) => h("option", { value: p }, p)))));
    list.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && list.value) { event.preventDefault(); insert(list.value); }
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(true); }
      if (event.key === "Tab") close(false);
    });
    list.addEventListener("click", () => { if (list?.value) insert(list.value); });
    list.addEventListener("focusout", () => setTimeout(() => { if (list && document.activeElement !== list) close(false); }, 200));
    wrap.append(list);
    button.setAttribute("aria-expanded", "true");
    list.focus();
  });
  return wrap;
}
