// An object input (Query, Headers, a Return's or Construct's keys) edited as name / value
// rows, each value text or a {{ reference }}, with "Edit as JSON" for power users. The rows
// are the truth while shown; the input's text (what Save, renames and "read by" see) is
// kept as the JSON of the rows.
import { objectToRows, pairValue, rowsToObject } from "../card-inputs.js";
import { append, h } from "../dom.js";
import { referencePicker } from "./references.js";
import { markDirty, uidOf } from "./state.js";
import { renameInExpressions } from "./step-refs.js";

const VALUE_HINTS = {
  text: "Each value is text; {{ references }} may sit anywhere in it.",
  query: "Each value is text or a {{ reference }}; a JSON list [\"a\", \"b\"] repeats the parameter.",
  any: "Each value is text or a {{ reference }}; 42, true, null, [..] and {..} are read as JSON (\"42\" in quotes is the text 42).",
};

// The rows of an input, made from its text on first use; null while it is edited as JSON.
function rowsOf(state, step, name, kind, own) {
  let byName = state.pairs.get(step);
  if (!byName) { byName = {}; state.pairs.set(step, byName); }
  if (!(name in byName)) {
    const rows = objectToRows(kind, own[name]);
    byName[name] = rows === null ? null : (rows.length ? rows : [{ key: "", value: "" }]);
  }
  return byName[name];
}

// An input edited as rows: {asRows: true, value} (value undefined when no row is filled in,
// so the card's default applies); {asRows: false} when it is edited as JSON text instead.
// InputError names the row that is not a name and a value.
export function pairsInput(state, step, name, kind, field) {
  const rows = state.pairs.get(step)?.[name];
  if (!rows) return { asRows: false };
  const value = rowsToObject(kind, rows, field);
  return { asRows: true, value: Object.keys(value).length ? value : undefined };
}

// steps.<old> becomes steps.<new> in the rows' values too.
export function renameInPairs(state, step, oldId, newId) {
  let changed = 0;
  for (const rows of Object.values(state.pairs.get(step) || {})) {
    for (const row of rows || []) {
      const next = renameInExpressions(row.value, oldId, newId);
      if (next !== row.value) { row.value = next; changed += 1; }
    }
  }
  return changed;
}

function syncText(kind, rows, own, name) {
  const value = {};
  for (const row of rows) if (row.key.trim() && !Object.hasOwn(value, row.key.trim())) value[row.key.trim()] = pairValue(kind, row.value);
  own[name] = Object.keys(value).length ? JSON.stringify(value, null, 2) : "";
}

// The field: label, mode switch, rows (or the JSON text area from jsonControl()), hint.
// name is the input's name ("*" for a card of free-form keys); field its data-field path.
export function pairsField(state, step, place, { name, kind, title, field, own, jsonControl, jsonHint, required, noun }) {
  const uid = `${uidOf(state, step)}-in-${name === "*" ? "all" : name}`;
  const holder = h("div", { class: "field pairs-field", "data-field": field, "data-input": name });
  const draw = (focus) => {
    const rows = rowsOf(state, step, name, kind, own);
    const switchButton = h("button", { type: "button", class: "btn-link pairs-mode", "aria-pressed": rows ? "false" : "true" },
      rows ? "Edit as JSON" : "Edit as rows");
    switchButton.addEventListener("click", () => {
      const byName = state.pairs.get(step);
      if (rows) { syncText(kind, rows, own, name); byName[name] = null; draw("json"); return; }
      const next = objectToRows(kind, own[name]);
      if (next === null) {
        holder.querySelectorAll(".field-error").forEach((e) => e.remove());
        holder.append(h("p", { class: "field-error", role: "alert" }, "This is not a JSON object of names and values (a whole {{ reference }} stays JSON): fix it, or keep editing it as JSON."));
        return;
      }
      byName[name] = next.length ? next : [{ key: "", value: "" }];
      draw("rows");
    });
    const label = rows
      ? h("span", { class: "label", id: `${uid}-label` }, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null)
      : null;
    let body;
    if (!rows) {
      const control = jsonControl();
      body = [h("div", { class: "label-row" }, h("label", { for: control.id }, `${title} (JSON object)`), h("div", { class: "label-tools" }, switchButton, referencePicker(state, control, "json", place, title))),
        control, h("p", { class: "hint" }, jsonHint)];
    } else {
      body = [h("div", { class: "label-row" }, label, h("div", { class: "label-tools" }, switchButton)),
        h("div", { class: "pairs", role: "group", "aria-labelledby": `${uid}-label` },
          rows.map((row, index) => rowView(state, place, { rows, row, index, kind, own, name, uid, title, field, redraw: draw })),
          h("button", { type: "button", class: "btn btn-small pairs-add", id: `${uid}-add`, onclick: () => {
            rows.push({ key: "", value: "" });
            draw(`${uid}-key-${rows.length - 1}`);
          } }, `+ Add ${noun}`)),
        h("p", { class: "hint" }, VALUE_HINTS[kind])];
    }
    holder.replaceChildren(...body);
    if (focus === "json") holder.querySelector("textarea")?.focus();
    else if (focus === "rows") holder.querySelector(".pair-key")?.focus();
    else if (focus) holder.querySelector(`#${CSS.escape(focus)}`)?.focus();
  };
  draw(null);
  return holder;
}

function rowView(state, place, { rows, row, index, kind, own, name, uid, title, field, redraw }) {
  const changed = () => { syncText(kind, rows, own, name); markDirty(state); };
  const keyInput = h("input", {
    id: `${uid}-key-${index}`, class: "code pair-key", value: row.key, autocomplete: "off", spellcheck: "false",
    placeholder: "name", "aria-label": `${title}: name ${index + 1}`,
  });
  const valueInput = h("input", {
    id: `${uid}-value-${index}`, class: "pair-value", value: row.value, autocomplete: "off", spellcheck: "false",
    placeholder: "value or {{ reference }}", "aria-label": `${title}: value ${index + 1}`,
  });
  const removeLabel = () => `Remove ${title} row ${index + 1}${row.key.trim() ? ` (${row.key.trim()})` : ""}`;
  const remove = h("button", {
    type: "button", class: "btn btn-small btn-icon btn-danger-quiet", "aria-label": removeLabel(),
    onclick: () => {
      rows.splice(index, 1);
      if (!rows.length) rows.push({ key: "", value: "" });
      changed();
      redraw(rows.length > index ? `${uid}-key-${index}` : `${uid}-add`);
    },
  }, "×");
  // errors find a row by its name (cards.0.inputs.headers.X-Api), or by its place (.#0)
  // while it has none
  const where = () => (row.key.trim() ? `${field}.${row.key.trim()}` : `${field}.#${index}`);
  const named = () => (row.key.trim() ? `${title} “${row.key.trim()}”` : `${title} row ${index + 1}`);
  const holder = h("div", { class: "pair", "data-field": where(), "data-label": named() });
  keyInput.addEventListener("input", () => {
    row.key = keyInput.value;
    remove.setAttribute("aria-label", removeLabel());
    holder.dataset.field = where();
    holder.dataset.label = named();
    changed();
  });
  valueInput.addEventListener("input", () => { row.value = valueInput.value; changed(); });
  return append(holder, [keyInput, valueInput,
    referencePicker(state, valueInput, kind === "text" ? "text" : "pair", place, `${title} value ${index + 1}`, { compact: true }),
    remove]);
}
