// A collapsible, read-only view of a JSON value (text nodes only: nothing in it can run).
import { h } from "./dom.js";

function scalar(value) {
  if (value === null) return h("span", { class: "j-null" }, "null");
  if (typeof value === "string") return h("span", { class: "j-str" }, JSON.stringify(value));
  if (typeof value === "number") return h("span", { class: "j-num" }, String(value));
  if (typeof value === "boolean") return h("span", { class: "j-bool" }, String(value));
  return h("span", {}, String(value));
}

function node(value, depth) {
  if (value === null || typeof value !== "object") return scalar(value);
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) return h("span", { class: "j-punct" }, isArray ? "[]" : "{}");
  const summary = isArray ? `[ ${entries.length} item${entries.length === 1 ? "" : "s"} ]`
    : `{ ${entries.length} key${entries.length === 1 ? "" : "s"} }`;
  const details = h("details", { class: "j-node", open: depth < 2 },
    h("summary", { class: "j-punct" }, summary),
    h("ul", { class: "j-list" }, entries.map(([key, item]) =>
      h("li", {}, isArray ? null : h("span", { class: "j-key" }, JSON.stringify(key)), isArray ? null : ": ", node(item, depth + 1)))));
  return details;
}

export function jsonView(value) {
  return h("div", { class: "json-view" }, node(value, 0));
}

// A body as the user should see it: JSON as a tree, text as preformatted text.
export function bodyView(body) {
  if (body !== null && typeof body === "object") return jsonView(body);
  if (typeof body === "string") return h("pre", { class: "body-text" }, body);
  return jsonView(body);
}
