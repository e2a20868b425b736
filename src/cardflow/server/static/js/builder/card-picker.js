// The Add a card dialog: card families as tabs, the family's cards as buttons.
import { clear, h, modal } from "../dom.js";
import { markDirty, walk } from "./state.js";

const FAMILY_ORDER = ["API Connector", "Flow", "Object", "JSON", "Text", "XML"];

// The id a new card starts from: its short name (get, close, for_each), or, when another
// card type has the same short name, with its family (object_get next to an HTTP get).
function baseId(state, cardId) {
  const short = cardId.split(".").pop();
  const shared = state.catalogue.filter((c) => c.id.split(".").pop() === short).length > 1;
  return shared && !cardId.startsWith("api_connector.") ? cardId.replace(/\./g, "_") : short;
}

// A card id not yet taken anywhere in the flow, from the card's own name.
function uniqueId(state, base) {
  const clean = base.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([^A-Za-z_])/, "_$1");
  const taken = new Set([...walk(state)].map((c) => c.id));
  if (!taken.has(clean)) return clean;
  let n = 2;
  while (taken.has(`${clean}_${n}`)) n += 1;
  return `${clean}_${n}`;
}

// Adds the chosen card at the end of target (the flow's cards, or a nested list).
export function openCardPicker(state, target = state.doc.cards) {
  const { catalogue, root } = state;
  const families = [...new Set(catalogue.map((c) => c.family))].sort((a, b) => {
    const ia = FAMILY_ORDER.indexOf(a); const ib = FAMILY_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const list = h("div", { class: "picker-cards", role: "tabpanel", id: "picker-panel" });
  const tabs = h("div", { class: "picker-families", role: "tablist", "aria-label": "Card families", "aria-orientation": "vertical" });
  let dialog;
  const show = (family, focus = false) => {
    tabs.querySelectorAll("button").forEach((b) => {
      const selected = b.dataset.family === family;
      b.setAttribute("aria-selected", String(selected));
      b.tabIndex = selected ? 0 : -1;
      if (selected && focus) b.focus();
    });
    list.setAttribute("aria-label", family);
    clear(list, catalogue.filter((c) => c.family === family).map((spec) =>
      h("button", { type: "button", class: "picker-card", "data-card": spec.id, onclick: () => {
        const step = { id: uniqueId(state, baseId(state, spec.id)), card: spec.id, connection: null, inputs: {}, on_error: "fail", retry: null, timeout: null };
        for (const name of spec.nested_inputs || []) step.inputs[name] = [];
        target.push(step);
        markDirty(state);
        dialog.close();
        state.render();
        const panel = root.querySelector(`[data-step="${CSS.escape(step.id)}"]`);
        panel?.scrollIntoView({ block: "start" });
        panel?.querySelector("select, input:not(.step-id), textarea")?.focus();
      } }, h("strong", {}, spec.title), h("span", { class: "muted small" }, spec.description))));
  };
  for (const family of families) {
    tabs.append(h("button", { type: "button", role: "tab", class: "picker-family", "data-family": family, "aria-controls": "picker-panel", onclick: () => show(family) }, family));
  }
  tabs.addEventListener("keydown", (event) => {
    const keys = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
    if (!(event.key in keys) && event.key !== "Home" && event.key !== "End") return;
    event.preventDefault();
    const at = families.indexOf(document.activeElement?.dataset?.family);
    let next = event.key === "Home" ? 0 : event.key === "End" ? families.length - 1 : at + keys[event.key];
    next = (next + families.length) % families.length;
    show(families[next], true);
  });
  dialog = modal("Add a card", h("div", { class: "picker" }, tabs, list), { wide: true });
  show(families[0], true);
}
