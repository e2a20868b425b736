// The cards of the flow, in order: each card's panel (id, inputs, options, Test this card,
// move and remove), and the cards nested in For Each and If / Else, drawn the same way.
import { inputKind, isFreeform } from "../card-inputs.js";
import { fieldError, h, toast } from "../dom.js";
import { connectionField, freeformField, inputField } from "./card-fields.js";
import { openCardPicker } from "./card-picker.js";
import { outputPick, pinButton, showAsCurl, testResultView, testStep } from "./card-test.js";
import { keepTests } from "./kept-tests.js";
import { textsOf } from "./document.js";
import { busy, labelled } from "./fields.js";
import { renameInPairs } from "./pairs.js";
import { visibleBefore } from "./references.js";
import { referencesIn, renameInText } from "./step-refs.js";
import { markDirty, nestedNames, uidOf, walk } from "./state.js";
import { may } from "../role.js";

const NESTED_TITLES = { cards: "For each item, run these cards", then: "When true, run", else: "Otherwise, run" };

// A list of cards at path (cards, or cards.0.inputs.cards), seeing outer.earlier cards'
// outputs (and loop.* inside a For Each).
export function containerView(state, list, path, outer) {
  if (!list.length) {
    return h("p", { class: "muted small nested-empty" }, outer.loop && path.endsWith(".cards") ? "No cards yet: they see loop.item and loop.index." : "No cards yet.");
  }
  return h("div", { class: "steps" }, list.map((step, index) => stepPanel(state, {
    step, index, list, path: `${path}.${index}`, earlier: outer.earlier, loop: outer.loop,
    number: outer.number ? `${outer.number}.${index + 1}` : String(index + 1),
  })));
}

function stepPanel(state, place) {
  const { root } = state;
  const { step, index, list, path } = place;
  const spec = state.specs[step.card];
  const idInput = h("input", { id: `${uidOf(state, step)}-id`, value: step.id, class: "code step-id", autocomplete: "off", spellcheck: "false" });
  let previousId = step.id;
  idInput.addEventListener("input", () => { step.id = idInput.value.trim(); markDirty(state); });
  idInput.addEventListener("change", () => {
    if (previousId && step.id && previousId !== step.id) renameReferences(state, previousId, step.id);
    previousId = step.id;
    state.render();
  });
  const resultBox = h("div", { class: "test-box", "aria-live": "polite" });
  const last = state.testResults.get(step);
  if (last && !last.typed) resultBox.append(testResultView(last, [], outputPick(state, step)));
  const move = (delta) => {
    const target = index + delta;
    if (target < 0 || target >= list.length) return;
    [list[index], list[target]] = [list[target], list[index]];
    markDirty(state);
    state.render();
    root.querySelector(`[data-step="${CSS.escape(step.id)}"] [data-move="${delta < 0 ? "up" : "down"}"]`)?.focus();
  };
  const body = [];
  // worded as the server words it (cardflow.cards.registry.unknown_card)
  if (!spec) body.push(h("p", { class: "cell-error" }, `There is no card '${step.card}'; the cards are ${Object.keys(state.specs).sort().join(", ")}.`));
  else {
    if (spec.uses_connection) body.push(connectionField(state, step, place));
    if (isFreeform(spec)) body.push(freeformField(state, step, place));
    const required = new Set(spec.inputs.required || []);
    const nested = nestedNames(state, step);
    for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
      if (!nested.includes(name)) body.push(inputField(state, step, place, name, prop, required.has(name)));
    }
    for (const name of nested) body.push(nestedSection(state, place, name));
    body.push(optionsBlock(state, step, place));
    body.push(typedOutputsBlock(state, step, place));
  }
  return h("section", { class: path.includes(".inputs.") ? "panel step step-nested" : "panel step", "data-step": step.id, "data-field": path, "aria-label": `Card ${place.number}: ${spec?.title || step.card}` },
    h("div", { class: "step-head" },
      h("span", { class: "step-num", "aria-hidden": "true" }, place.number),
      h("div", { class: "step-title" },
        h("h3", {}, spec ? `${spec.family} · ${spec.title}` : step.card, last?.pinned ? h("span", { class: "badge badge-pinned", title: "Later cards' tests use this card's pinned outputs" }, "Pinned") : null),
        h("p", { class: "muted small" }, spec?.description || "")),
      h("div", { class: "step-actions" },
        h("button", { type: "button", class: "btn btn-small btn-icon", "data-move": "up", "aria-label": `Move ${step.id} up`, disabled: index === 0, onclick: () => move(-1) }, "↑"),
        h("button", { type: "button", class: "btn btn-small btn-icon", "data-move": "down", "aria-label": `Move ${step.id} down`, disabled: index === list.length - 1, onclick: () => move(1) }, "↓"),
        h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Remove ${step.id}`, onclick: () => {
          // Removed at once, with an Undo that names the cards reading its outputs.
          const gone = new Set([...walk(state, [step])]);
          const readers = [...walk(state)].filter((other) => !gone.has(other) && referencesIn(Object.values(textsOf(state, other))).has(step.id)).map((other) => other.id);
          const [removed] = list.splice(index, 1);
          state.undo = {
            message: readers.length
              ? `Removed card “${removed.id}”. ${readers.length === 1 ? "Card" : "Cards"} ${readers.map((id) => `“${id}”`).join(", ")} ${readers.length === 1 ? "reads" : "read"} its outputs and will fail until changed.`
              : `Removed card “${removed.id}”.`,
            restore: () => list.splice(Math.min(index, list.length), 0, removed),
          };
          markDirty(state);
          state.render();
          root.querySelector("#undo-remove")?.focus();
        } }, "Remove"))),
    h("div", { class: "field field-inline", "data-field": `${path}.id` },
      h("label", { for: idInput.id }, "Card id"), idInput,
      h("span", { class: "hint" }, "Later cards refer to its outputs as ", h("code", {}, `steps.${step.id || "<id>"}`), ".")),
    body,
    h("div", { class: "step-foot" },
      may("builder") && h("button", { type: "button", class: "btn", "data-action": "test-card", onclick: (event) => busy(event.currentTarget, () => testStep(state, place, resultBox)) }, "▶ Test this card"),
      pinButton(state, step),
      step.card.startsWith("api_connector.") && step.card !== "api_connector.close"
        ? h("button", { type: "button", class: "btn btn-quiet", "data-action": "copy-curl", onclick: (event) => busy(event.currentTarget, () => showAsCurl(state, place)) }, "Copy as cURL")
        : null,
      h("span", { class: "hint" }, last?.pinned
        ? "Its outputs are pinned: later cards' tests use them, and testing this card again shows a new answer without replacing them. Real runs never use pinned outputs."
        : "Runs it now with these inputs; references use the test data and earlier cards' last tests.")),
    resultBox);
}

// The cards a For Each or If / Else card runs, edited like the flow's own.
function nestedSection(state, place, name) {
  const { step } = place;
  const list = step.inputs[name] || (step.inputs[name] = []);
  const inner = {
    earlier: visibleBefore(place),
    loop: place.loop || step.card === "list.for_each",
    number: place.number,
  };
  const titleId = `${uidOf(state, step)}-nested-${name}`;
  return h("div", { class: "nested", "data-field": `${place.path}.inputs.${name}`, "aria-labelledby": titleId, role: "group" },
    h("h4", { id: titleId, class: "nested-title" }, NESTED_TITLES[name] || name),
    containerView(state, list, `${place.path}.inputs.${name}`, inner),
    h("button", { type: "button", class: "btn btn-small", id: `${uidOf(state, step)}-add-${name}`, "aria-label": `Add a card to “${NESTED_TITLES[name] || name}” of ${step.id}`, onclick: () => openCardPicker(state, list) }, "+ Add card here"));
}

function optionsBlock(state, step, place) {
  const uid = uidOf(state, step);
  const onError = h("select", { id: `${uid}-on-error` },
    h("option", { value: "fail", selected: step.on_error !== "continue" }, "Stop the flow (the run fails)"),
    h("option", { value: "continue", selected: step.on_error === "continue" }, "Continue with the next card"));
  onError.addEventListener("change", () => { step.on_error = onError.value; markDirty(state); });
  const retries = h("input", { id: `${uid}-retry-count`, type: "number", min: 0, max: 10, value: step.retry?.count ?? "", placeholder: "2" });
  retries.addEventListener("input", () => {
    const { count: _old, ...rest } = step.retry || {};
    step.retry = retries.value === "" ? (Object.keys(rest).length ? rest : null) : { ...rest, count: Number(retries.value) };
    markDirty(state);
  });
  const maxWait = h("input", { id: `${uid}-retry-wait`, type: "number", min: 0, max: 600, value: step.retry?.max_wait ?? "", placeholder: "30" });
  maxWait.addEventListener("input", () => {
    const base = step.retry || {};
    step.retry = maxWait.value === "" ? (base.count !== undefined ? { count: base.count } : null) : { ...base, max_wait: Number(maxWait.value) };
    markDirty(state);
  });
  const timeout = h("input", { id: `${uid}-timeout`, type: "number", min: 0.1, max: 3600, step: "any", value: step.timeout ?? "", placeholder: "30" });
  timeout.addEventListener("input", () => { step.timeout = timeout.value === "" ? null : Number(timeout.value); markDirty(state); });
  const open = step.on_error === "continue" || step.retry || step.timeout;
  return h("details", { class: "options", open: Boolean(open) },
    h("summary", {}, "On error, retries and timeout"),
    h("div", { class: "grid-4" },
      labelled(`${place.path}.on_error`, "When this card fails", onError),
      labelled(`${place.path}.retry.count`, "Retries (429 / 503)", retries),
      labelled(`${place.path}.retry.max_wait`, "Longest wait (s)", maxWait),
      labelled(`${place.path}.timeout`, "Timeout (s)", timeout)));
}

// Values typed for tests: what this card's outputs should be when later cards are tested
// (instead of running it, e.g. a call that changes something at the service).
function typedOutputsBlock(state, step, place) {
  const id = `${uidOf(state, step)}-test-outputs`;
  const last = state.testResults.get(step);
  const area = h("textarea", { id, rows: 4, class: "code", spellcheck: "false", "data-typed-outputs": "", placeholder: '{"status_code": 200, "body": {"id": 42}}' });
  area.value = last?.outputs ? JSON.stringify(last.outputs, null, 2) : "";
  const field = `${place.path}.test_outputs`;
  area.addEventListener("change", () => {
    state.root.querySelectorAll(`[data-error-for="${CSS.escape(field)}"]`).forEach((e) => e.remove());
    const text = area.value.trim();
    if (!text) { state.testResults.delete(step); keepTests(state); return; }
    try {
      const pinned = state.testResults.get(step)?.pinned;
      state.testResults.set(step, { ok: true, outputs: JSON.parse(text), typed: true, ...(pinned ? { pinned } : {}) });
      keepTests(state);
    } catch {
      area.closest(".field").append(fieldError(field, "Enter the outputs as JSON."));
    }
  });
  return h("details", { class: "options" },
    h("summary", {}, "Outputs for testing later cards"),
    h("div", { class: "field", "data-field": field },
      h("label", { for: id }, "Outputs (JSON)"), area,
      h("p", { class: "hint" }, "Filled in by “Test this card”; or type them, to test later cards without running this one. Kept for this flow (not in its file) until it is deleted.")));
}

// steps.<old> becomes steps.<new> in every card's inputs (as typed), so references hold.
function renameReferences(state, oldId, newId) {
  let changed = 0;
  for (const other of walk(state)) {
    const own = textsOf(state, other);
    const properties = state.specs[other.card]?.inputs.properties || {};
    for (const [name, text] of Object.entries(own)) {
      const json = name === "*" || (name in properties && inputKind(name, properties[name]) === "json");
      const next = renameInText(text, oldId, newId, { json });
      if (next !== text) { own[name] = next; changed += 1; }
    }
    renameInPairs(state, other, oldId, newId); // the rows' text above is renamed already
  }
  if (changed) toast(`Updated ${changed} reference${changed > 1 ? "s" : ""} to steps.${newId}.`, "ok");
}
