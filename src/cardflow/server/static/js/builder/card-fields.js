// A card's inputs in its panel: the connection, each input as a field (with "Insert
// reference"), or one JSON object for a card of free-form keys.
import { get } from "../api.js";
import { inputKind, isKeyed, pairValueKind, toText } from "../card-inputs.js";
import { authorizeUrl, openConnectionDialog, rejectionNote } from "../connections.js";
import { h } from "../dom.js";
import { textsOf } from "./document.js";
import { pairsField } from "./pairs.js";
import { referencePicker } from "./references.js";
import { markDirty, uidOf } from "./state.js";

const INPUT_LABELS = { url: "URL", status_code: "Status code" };

export function connectionField(state, step, place) {
  const { root } = state;
  const id = `${uidOf(state, step)}-connection`;
  const select = h("select", { id, class: "conn-select" },
    h("option", { value: "" }, "No connection (no auth)"),
    state.connections.map((c) => h("option", { value: c.name, selected: c.name === step.connection }, `${c.name}${c.status !== "ready" ? ` (${c.status.replace("_", " ")})` : ""}`)),
    h("option", { value: "__new__" }, "+ New connection…"));
  select.addEventListener("change", async () => {
    if (select.value === "__new__") {
      const created = await openConnectionDialog();
      if (created) {
        state.connections = await get("/connections");
        step.connection = created.name;
        markDirty(state);
      }
      state.render();
      root.querySelector(`[data-step="${CSS.escape(step.id)}"] .conn-select`)?.focus();
      return;
    }
    step.connection = select.value || null;
    markDirty(state);
    state.render();
  });
  const current = state.connections.find((c) => c.name === step.connection);
  const rejected = current?.status === "ready" && current.rejected ? rejectionNote(current.rejected) : null;
  const note = rejected || (current && current.status !== "ready"
    ? h("p", { class: "cell-note" }, current.status === "needs_authorization" ? "This connection needs authorization: " : `This connection has an error: ${current.last_error || ""} `,
      // redirect_uri: a connection a user authorizes (its auth type says user_authorizes)
      current.redirect_uri ? h("a", { href: authorizeUrl(current) }, "Authorize") : h("a", { href: "/connections" }, "Connections"))
    : null);
  return h("div", { class: "field", "data-field": `${place.path}.connection` },
    h("label", { for: id }, "Connection"), select, note,
    h("p", { class: "hint" }, "Its credentials are added to every request; the card never sees them."));
}

export function inputField(state, step, place, name, prop, required) {
  const own = textsOf(state, step);
  const kind = inputKind(name, prop);
  const id = `${uidOf(state, step)}-in-${name}`;
  const title = INPUT_LABELS[name] || prop.title || name;
  if (isKeyed(prop)) {
    return pairsField(state, step, place, {
      name, kind: pairValueKind(prop), title, own, required, field: `${place.path}.inputs.${name}`,
      noun: name === "headers" ? "header" : name === "query" ? "parameter" : "key",
      jsonControl: () => jsonArea(id, own, name, state, step),
      jsonHint: [prop.description, "A JSON object, or a {{ reference }} to one."].filter(Boolean).join(" "),
    });
  }
  let control;
  if (kind === "choice") {
    control = h("select", { id }, h("option", { value: "" }, "—"), prop.enum.map((v) => h("option", { value: v, selected: own[name] === v }, v)));
    control.addEventListener("change", () => { own[name] = control.value; markDirty(state); });
  } else {
    const multiline = kind === "json" || kind === "longtext";
    control = multiline ? h("textarea", { id, rows: kind === "json" ? 3 : 4, class: "code", spellcheck: "false" })
      : h("input", { id, autocomplete: "off", spellcheck: "false", class: kind === "text" ? "" : "code" });
    control.value = own[name] || "";
    const example = state.specs[step.card]?.example?.[name];
    if (example !== undefined) control.placeholder = toText(kind, example).split("\n").slice(0, 3).join(" ");
    control.addEventListener("input", () => { own[name] = control.value; markDirty(state); });
  }
  const hints = { json: "JSON, or a {{ reference }}.", number: "A number, or a {{ reference }}.", boolean: "true / false, or a {{ reference }}." };
  return h("div", { class: "field", "data-field": `${place.path}.inputs.${name}`, "data-input": name },
    h("div", { class: "label-row" },
      h("label", { for: id }, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
      kind === "choice" ? null : referencePicker(state, control, kind, place, title)),
    control,
    h("p", { class: "hint" }, [prop.description, hints[kind]].filter(Boolean).join(" ")));
}

export function freeformField(state, step, place) {
  const own = textsOf(state, step);
  return pairsField(state, step, place, {
    name: "*", kind: "any", title: "Keys", own, required: false, field: `${place.path}.inputs`, noun: "key",
    jsonControl: () => jsonArea(`${uidOf(state, step)}-in-all`, own, "*", state, step),
    jsonHint: "Each key becomes a key of the answer; values may be {{ references }}.",
  });
}

function jsonArea(id, own, name, state, step) {
  const control = h("textarea", { id, rows: 5, class: "code", spellcheck: "false" });
  control.value = own[name] || "";
  const example = name === "*" ? state.specs[step.card]?.example : state.specs[step.card]?.example?.[name];
  if (example) control.placeholder = JSON.stringify(example);
  control.addEventListener("input", () => { own[name] = control.value; markDirty(state); });
  return control;
}
