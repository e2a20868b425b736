// A collapsible, read-only view of a JSON value (text nodes only: nothing in it can run).
// With pick ({base, onPick}), each key is a button giving the reference path to its value
// (the builder inserts it as a {{ reference }}).
import { pathPart } from "./card-inputs.js";
import { h } from "./dom.js";

function scalar(value) {
  if (value === null) return h("span", { class: "j-null" }, "null");
  if (typeof value === "string") return h("span", { class: "j-str" }, JSON.stringify(value));
  if (typeof value === "number") return h("span", { class: "j-num" }, String(value));
  if (typeof value === "boolean") return h("span", { class: "j-bool" }, String(value));
  return h("span", {}, String(value));
}

function keyLabel(key, isArray, path, pick) {
  const text = isArray ? `${key}` : JSON.stringify(key);
  if (!pick) return isArray ? null : h("span", { class: "j-key" }, text);
  return h("button", {
    type: "button", class: "j-key j-pick", "data-path": path, title: `Insert {{ ${path} }}`,
    "aria-label": `Insert reference ${path}`, onclick: (event) => pick.onPick(path, event.currentTarget),
  }, text);
}

function node(value, depth, path = null, pick = null) {
  if (value === null || typeof value !== "object") return scalar(value);
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) return h("span", { class: "j-punct" }, isArray ? "[]" : "{}");
  const summary = isArray ? `[ ${entries.length} item${entries.length === 1 ? "" : "s"} ]`
    : `{ ${entries.length} key${entries.length === 1 ? "" : "s"} }`;
  const details = h("details", { class: "j-node", open: depth < 2 },
    h("summary", { class: "j-punct" }, summary),
    h("ul", { class: "j-list" }, entries.map(([key, item]) => {
      const inner = pick ? path + pathPart(key) : null;
      const label = keyLabel(key, isArray, inner, pick);
      return h("li", {}, label, label ? ": " : null, node(item, depth + 1, inner, pick));
    })));
  return details;
}

export function jsonView(value, pick = null) {
  return h("div", { class: pick ? "json-view json-pick" : "json-view" }, node(value, 0, pick?.base ?? null, pick));
}

// A body as the user should see it: JSON as a tree, text as preformatted text.
export function bodyView(body, pick = null) {
  if (body !== null && typeof body === "object") return jsonView(body, pick);
  if (typeof body === "string") return h("pre", { class: "body-text" }, body);
  return jsonView(body);
}
