// The flow builder: trigger, cards in order, inputs with references, Test this card, save.
// The page only edits a flow document; the server validates, runs and stores it.
// Each section is a module taking the page's state (state.js); this one draws the page.
import { ApiError, enc, get, post, put } from "../api.js";
import { InputError } from "../card-inputs.js";
import { clear, h, toast } from "../dom.js";
import { openCardPicker } from "./card-picker.js";
import { containerView } from "./cards.js";
import { buildDocument, documentOf, newDocument } from "./document.js";
import { busy, clearErrors, showErrors } from "./fields.js";
import { openHistory } from "./history.js";
import { keepTests, restoreTests } from "./kept-tests.js";
import { settingsSection } from "./settings.js";
import { trackReferenceTargets } from "./references.js";
import { createState, markDirty } from "./state.js";
import { openRunDialog } from "../run-dialog.js";
import { triggerSection } from "./trigger.js";
import { may } from "../role.js";

export async function builderPage(root, flowId) {
  const [catalogue, view] = await Promise.all([
    get("/cards"), flowId ? get(`/flows/${enc(flowId)}`) : Promise.resolve(null),
  ]);
  const connections = await get("/connections");
  const state = createState({ root, catalogue, view, connections, flowId });
  state.doc = view ? documentOf(state, view) : newDocument();
  await restoreTests(state);
  state.render = () => render(state);
  trackReferenceTargets(state);
  window.addEventListener("beforeunload", (event) => { if (state.dirty) event.preventDefault(); });
  // Ctrl+S / Cmd+S saves, as in an editor (not the browser's "save page").
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "s") {
      event.preventDefault();
      const button = state.root.querySelector("#save-flow");
      if (button && !button.disabled) button.click();
    }
  });
  render(state);
  if (!view) root.querySelector("#flow-name")?.focus();
}

function render(state) {
  const { root, doc } = state;
  const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
  const steps = doc.cards.length ? containerView(state, doc.cards, "cards", { earlier: [], loop: false, number: "" }) : null;
  clear(root,
    actionBar(state),
    undoBar(state),
    h("div", { id: "save-error" }),
    settingsSection(state),
    triggerSection(state),
    h("div", { id: "steps" }, steps || h("div", { class: "empty empty-small" },
      h("p", {}, "No cards yet. Add the first one: usually an API Connector card that calls a service."))),
    may("builder") && h("div", { class: "add-card" }, h("button", { type: "button", class: "btn btn-primary", id: "add-card", onclick: () => openCardPicker(state) }, "+ Add card")));
  if (focused) document.getElementById(focused)?.focus();
}

async function save(state) {
  clearErrors(state);
  let document;
  try { document = buildDocument(state); } catch (error) {
    if (error instanceof InputError) { showErrors(state, error.all || [error]); return; }
    throw error;
  }
  try {
    const { view } = state;
    const note = (state.note || "").trim();
    const query = note ? `?${new URLSearchParams({ note })}` : "";
    state.view = view ? await put(`/flows/${enc(view.id)}${query}`, document) : await post(`/flows${query}`, document);
    state.dirty = false;
    state.note = "";
    if (!state.flowId) { state.flowId = state.view.id; history.replaceState(null, "", `/flows/${enc(state.view.id)}`); }
    toast(`Saved “${state.view.name}”.`, "ok");
    state.undo = null;
    keepTests(state); // tests made before the first save are kept from now on
    render(state);
    state.root.querySelector("#save-status")?.replaceChildren("Saved");
  } catch (error) {
    if (error instanceof ApiError) showErrors(state, error.problems);
    else throw error;
  }
}

// After a restore from the version history: the builder shows the flow as restored.
async function restored(state, view, number) {
  state.view = view;
  state.doc = documentOf(state, view);
  state.texts = new Map();
  state.testResults = new Map();
  state.dirty = false;
  state.undo = null;
  await restoreTests(state);
  render(state);
  toast(`Restored version ${number}, saved as version ${view.saved_version}.`, "ok");
}

// After a card is removed: what it means for the cards reading it, and Undo.
function undoBar(state) {
  const undo = state.undo;
  if (!undo) return null;
  return h("div", { class: "banner banner-warn undo-bar", id: "undo-bar", role: "status" },
    h("span", {}, undo.message), " ",
    h("button", { type: "button", class: "btn btn-small", id: "undo-remove", onclick: () => {
      undo.restore();
      state.undo = null;
      markDirty(state);
      state.render();
    } }, "Undo"),
    h("button", { type: "button", class: "btn btn-small btn-quiet", "aria-label": "Dismiss", onclick: () => { state.undo = null; state.render(); } }, "×"));
}

// Back to the flows, the save state, run history, export, Run now and Save.
function actionBar(state) {
  const { view } = state;
  const noteInput = h("input", {
    type: "text", id: "save-note", class: "save-note", maxlength: "500", placeholder: "Note for this save (optional)",
    "aria-label": "Note for this save (optional), kept in the version history", value: state.note || "",
    oninput: (event) => { state.note = event.currentTarget.value; },
    onkeydown: (event) => { if (event.key === "Enter") { event.preventDefault(); state.root.querySelector("#save-flow")?.click(); } },
  });
  const historyButton = view ? h("button", { type: "button", class: "btn", id: "flow-history", onclick: () => {
    openHistory(state, (restoredView, number) => restored(state, restoredView, number));
  } }, "History") : null;
  const saveButton = h("button", { type: "button", class: "btn btn-primary", id: "save-flow", onclick: (event) => busy(event.currentTarget, () => save(state)) }, view ? "Save" : "Create flow");
  const runNow = view ? h("button", { type: "button", class: "btn", id: "run-now", onclick: () => {
    if (state.dirty) { toast("Save the flow first: a run uses the saved version.", "error"); return; }
    openRunDialog(state.view.id, state.sampleText, "prefilled with the builder's test data");
  } }, "Run now") : null;
  return h("div", { class: "builder-bar" },
    h("div", {}, h("a", { href: "/flows", class: "muted" }, "← Flows"), h("h1", {}, view ? view.name : "New flow")),
    h("div", { class: "page-actions" },
      h("span", { id: "save-status", class: "muted small", "aria-live": "polite" }, state.dirty ? "Unsaved changes" : ""),
      view ? h("a", { class: "btn", href: `/runs?flow=${enc(view.id)}` }, "Run history") : null,
      view ? h("a", { class: "btn", href: `/api/v1/flows/${enc(view.id)}/export`, download: `${view.name.replace(/[^\w.-]+/g, "_")}.yaml` }, "Export") : null,
      // a viewer reads the flow: no run, no save
      historyButton, may("builder") && [runNow, noteInput, saveButton]));
}
