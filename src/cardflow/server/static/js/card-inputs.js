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

// An object of names the user picks (query parameters, headers): edited as rows.
export function isKeyed(prop) {
  return schemaTypes(prop).includes("object") && !prop.properties && prop.additionalProperties !== undefined && prop.additionalProperties !== false;
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

// Every input that could not be read, at once: the first is its field and message.
export class InputErrors extends InputError {
  constructor(all) { super(all[0].field, all[0].message); this.all = all; }
}

// Runs read(); an InputError is noted in problems (when given) instead of thrown.
export function noting(problems, read) {
  if (!problems) return read();
  try { return read(); } catch (error) {
    if (!(error instanceof InputError)) throw error;
    problems.push(...(error.all || [error]));
    return undefined;
  }
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

// ---- objects edited as key / value rows ---------------------------------------------

// How a row's value text becomes a value, by what the object's values may be: "text"
// (headers: always text), "query" (text, or a JSON list for a repeated parameter) or "any"
// (a Return's or Construct's keys: 42, true, null, [..] and {..} are JSON, "42" in quotes
// is the text 42, anything else is text as typed). A {{ reference }} is always kept as
// typed, so it gives the referenced value's own type.
export function pairValueKind(prop) {
  const values = prop?.additionalProperties;
  if (!values || values === true) return "any";
  const types = schemaTypes(values);
  if (types.length === 1 && types[0] === "string") return "text";
  return types.includes("array") || (values.anyOf || []).some((p) => p.items) ? "query" : "any";
}

function parsesAsJson(text) {
  try { return { ok: true, value: JSON.parse(text) }; } catch { return { ok: false }; }
}

export function pairValue(kind, text) {
  if (kind === "text" || EXPRESSION.test(text)) return text;
  const parsed = parsesAsJson(text.trim());
  if (!parsed.ok) return text;
  return kind === "any" || queryJson(parsed.value) ? parsed.value : text;
}

// In a query, a number or true stays text (the URL holds text anyway); a list repeats the
// parameter, null leaves it out, "…" quotes a text that would read as one of those.
function queryJson(value) { return value === null || Array.isArray(value) || typeof value === "string"; }

// The inverse: the text a row shows for a value, read back by pairValue to the same value.
export function pairText(kind, value) {
  if (typeof value === "string") {
    if (kind === "text" || EXPRESSION.test(value)) return value;
    const parsed = parsesAsJson(value.trim());
    const misread = parsed.ok && (kind === "any" || queryJson(parsed.value));
    return misread ? JSON.stringify(value) : value;
  }
  if (kind === "query" && !queryJson(value)) return String(value);
  return JSON.stringify(value);
}

// Rows ({key, value} texts) as an object; InputError names the row that cannot be one.
export function rowsToObject(kind, rows, field) {
  const out = {};
  rows.forEach((row, index) => {
    const key = row.key.trim();
    if (!key) {
      if (row.value.trim()) throw new InputError(`${field}.#${index}`, "This row has a value but no name: enter one, or remove the row.");
      return;
    }
    if (Object.hasOwn(out, key)) throw new InputError(`${field}.${key}`, `“${key}” is in two rows: keep one.`);
    out[key] = pairValue(kind, row.value);
  });
  return out;
}

// An object's keys as rows, or null when the text is not an object of keys (a {{ reference }}
// to a whole object, or JSON being typed) and must stay JSON.
export function objectToRows(kind, text) {
  const trimmed = (text || "").trim();
  if (!trimmed) return [];
  const parsed = parsesAsJson(trimmed);
  if (!parsed.ok || !parsed.value || typeof parsed.value !== "object" || Array.isArray(parsed.value)) return null;
  return Object.entries(parsed.value).map(([key, value]) => ({ key, value: pairText(kind, value) }));
}

// Whether position pos of a JSON text is inside a string literal (so an inserted reference
// must not bring its own quotes).
export function insideJsonString(text, pos) {
  let inside = false;
  for (let i = 0; i < pos && i < text.length; i += 1) {
    const c = text[i];
    if (inside && c === "\\") i += 1;
    else if (c === "\"") inside = !inside;
  }
  return inside;
}
