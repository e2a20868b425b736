// The Add a card dialog: card families as tabs, the family's cards as buttons, and
// "Paste cURL": a curl command made into a card (its credentials offered as a connection).
import { ApiError, get, post } from "../api.js";
import { openConnectionDialog } from "../connections.js";
import { clear, h, modal, nextId, toast } from "../dom.js";
import { markDirty, walk } from "./state.js";

const CURL = "Paste cURL";

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

function focusStep(state, step) {
  const panel = state.root.querySelector(`[data-step="${CSS.escape(step.id)}"]`);
  panel?.scrollIntoView({ block: "start" });
  panel?.querySelector("select, input:not(.step-id), textarea")?.focus();
}

// The "Paste cURL" tab: the command → POST /cards/from-curl → the card, added to target;
// then the New Connection dialog, prefilled, for the command's credentials (the card never
// holds them). What the card could not keep stays listed in the tab.
function curlPanel(state, target, close) {
  const id = nextId("curl");
  const textarea = h("textarea", { id, name: "command", rows: 8, spellcheck: "false", autocomplete: "off", class: "curl-command", placeholder: "curl -X POST api.example.com/v1/users -u me:token -d '{\"name\": \"Ada\"}'" });
  const error = h("div", { class: "form-error", role: "alert" });
  const result = h("div", { class: "curl-result", "aria-live": "polite" });
  const importButton = h("button", { type: "submit", class: "btn btn-primary" }, "Import as a card");
  const form = h("form", { class: "form curl-form", novalidate: true, "data-field": "command" },
    h("label", { for: id }, "A curl command (e.g. from an API's docs)"),
    textarea,
    h("p", { class: "hint" }, "Its method, URL, query, headers and body fill the card. Credentials in it (-u, an Authorization or API-key header) are not put in the card: you are offered a new connection for them."),
    error, h("div", { class: "dialog-actions" }, importButton), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(error);
    textarea.removeAttribute("aria-invalid");
    importButton.disabled = true;
    let answer;
    try {
      answer = await post("/cards/from-curl", { command: textarea.value });
    } catch (failure) {
      textarea.setAttribute("aria-invalid", "true");
      clear(error, failure instanceof ApiError ? failure.message : String(failure));
      textarea.focus();
      return;
    } finally {
      importButton.disabled = false;
    }
    const { card, connection, warnings } = answer;
    const step = { id: uniqueId(state, baseId(state, card.card)), card: card.card, connection: null, inputs: card.inputs, on_error: "fail", retry: null, timeout: card.timeout ?? null };
    target.push(step);
    markDirty(state);
    state.render();
    textarea.value = ""; // the command may hold a secret: not kept in the page
    const notes = h("ul", { class: "curl-warnings" }, warnings.map((w) => h("li", {}, w)));
    const connectionNote = h("p", { class: "curl-connection" });
    const done = h("button", { type: "button", class: "btn", onclick: () => { close(); focusStep(state, step); } }, "Done");
    const offer = async () => {
      const saved = await openConnectionDialog(null, { name: connection.name, authType: connection.auth_type, config: connection.config, allowedHosts: connection.allowed_hosts });
      connection.config = {}; // the secret is not kept once the dialog is closed
      if (saved) {
        state.connections = await get("/connections");
        step.connection = saved.name;
        markDirty(state);
        state.render();
        clear(connectionNote, `The card uses the new connection “${saved.name}”.`);
      } else {
        clear(connectionNote, "No connection was created: pick one in the card before running it.");
      }
      done.focus();
    };
    clear(result,
      h("p", { class: "curl-added", "data-card": card.card }, `Added the card “${step.id}” (${state.specs[card.card]?.title || card.card}).`),
      warnings.length ? [h("p", { class: "muted small" }, "What to know:"), notes] : null,
      connection ? connectionNote : null,
      h("div", { class: "dialog-actions" }, done));
    if (connection) {
      clear(connectionNote, "The command's credentials were not put in the card.");
      await offer();
    } else {
      done.focus();
    }
    if (!warnings.length && !connection) { close(); focusStep(state, step); toast(`Added the card “${step.id}”.`, "ok"); }
  });
  return form;
}

// Adds the chosen card at the end of target (the flow's cards, or a nested list).
export function openCardPicker(state, target = state.doc.cards) {
  const { catalogue } = state;
  const families = [...new Set(catalogue.map((c) => c.family))].sort((a, b) => {
    const ia = FAMILY_ORDER.indexOf(a); const ib = FAMILY_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  families.push(CURL);
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
    list.classList.toggle("picker-curl", family === CURL);
    if (family === CURL) {
      clear(list, curlPanel(state, target, () => dialog.close()));
      if (!focus) list.querySelector("textarea").focus();
      return;
    }
    clear(list, catalogue.filter((c) => c.family === family).map((spec) =>
      h("button", { type: "button", class: "picker-card", "data-card": spec.id, onclick: () => {
        const step = { id: uniqueId(state, baseId(state, spec.id)), card: spec.id, connection: null, inputs: {}, on_error: "fail", retry: null, timeout: null };
        for (const name of spec.nested_inputs || []) step.inputs[name] = [];
        target.push(step);
        markDirty(state);
        dialog.close();
        state.render();
        focusStep(state, step);
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
