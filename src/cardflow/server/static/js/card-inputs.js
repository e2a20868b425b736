// Card inputs in the builder: how each input is edited as text and read back as a value,
// and the reference paths offered for a value. Pure functions, no DOM.

const EXPRESSION = /^\s*\{\{[\s\S]*\}\}\s*$/;
const MULTILINE_TEXT = new Set(["body", "template"]);

// ---- input kinds: how a card input is edited and read back --------------------------

export function schemaTypes(prop) {
  if (prop.type) return [prop.type];
  if (prop.anyOf) return prop.anyOf.map((p) => p.type).filter(Boolean);
  return [];
}

export function inputKind(name, prop) {
  if (prop.enum) return "choice";
  const types = schemaTypes(prop).filter((t) => t !== "null");
  if (types.length === 1 && types[0] === "string") return MULTILINE_TEXT.has(name) ? "longtext" : "text";
  if (types.length === 1 && (types[0] === "integer" || types[0] === "number")) return "number";
  if (types.length === 1 && types[0] === "boolean") return "boolean";
  return "json";
}

export function isFreeform(spec) {
  const schema = spec.inputs;
  return !Object.keys(schema.properties || {}).length && schema.additionalProperties !== false;
}

export function toText(kind, value) {
  if (value === undefined || value === null) return "";
  if (kind === "json") return typeof value === "string" && EXPRESSION.test(value) ? value : JSON.stringify(value, null, 2);
  if (typeof value === "string") return value;
  return kind === "text" || kind === "longtext" ? JSON.stringify(value) : String(value);
}

export class InputError extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

export function fromText(kind, text, prop, field) {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (kind === "text" || kind === "longtext" || kind === "choice") return text;
  if (EXPRESSION.test(trimmed)) return trimmed;
  if (kind === "number") {
    const number = Number(trimmed);
    if (!Number.isFinite(number)) throw new InputError(field, "Enter a number or a {{ reference }}.");
    return number;
  }
  if (kind === "boolean") {
    if (trimmed === "true" || trimmed === "false") return trimmed === "true";
    throw new InputError(field, "Enter true, false or a {{ reference }}.");
  }
  try {
    return JSON.parse(trimmed);
  } catch {
    const types = schemaTypes(prop);
    const looksLikeJson = /^[[{]/.test(trimmed);
    if (!looksLikeJson && (!types.length || types.includes("string"))) return text; // "any" inputs take text too
    throw new InputError(field, "Enter JSON (e.g. {\"key\": \"value\"}) or a {{ reference }}.");
  }
}

// ---- references ---------------------------------------------------------------------

export function pathPart(key) {
  if (typeof key === "number") return `[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `.${JSON.stringify(key)}`;
}

// The paths into a sample value, any depth (a SOAP reply nests deep), at most 400 per
// value and 30 keys per object (lists: their first item); values (a Map) gets each
// path's value, for showing what a reference would give.
export function samplePaths(base, value, depth, out, values = null, budget = { left: 400 }) {
  if (depth > 16 || value === null || typeof value !== "object") return;
  const entries = Array.isArray(value) ? value.slice(0, 1).map((v) => [0, v]) : Object.entries(value).slice(0, 30);
  for (const [key, item] of entries) {
    if (budget.left <= 0) return;
    budget.left -= 1;
    const path = base + pathPart(key);
    out.push(path);
    values?.set(path, item);
    samplePaths(path, item, depth + 1, out, values, budget);
  }
}
