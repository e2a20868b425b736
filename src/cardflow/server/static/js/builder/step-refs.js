// Step references (steps.<id>) in {{ expressions }}: the same ones the server finds
// (cardflow/flows/expressions.py: _EXPR, _STEP_REF, expressions_in, step_references), so the
// builder and the validator agree on which cards an input reads. Pure functions, no DOM.

// Python's \s and \w on text: str.isspace() characters, and letters, digits and "_".
const SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const WORD = "[\\p{L}\\p{N}_]";
const EXPRESSION = /\{\{([\s\S]*?)\}\}/g;
// steps.<id>: a bare identifier, or a JSON-quoted one ("my-card") taken as written.
const STEP_REF = new RegExp(
  `(?<!${WORD}|\\.)steps${SPACE}*\\.${SPACE}*(?:"((?:[^"\\\\]|\\\\[^\\n])*)"|([A-Za-z_][A-Za-z0-9_]*))`, "gu");

// Every {{ expression }} inside a value: strings, and the values of nested lists and objects.
export function expressionsIn(value, found = []) {
  if (typeof value === "string") {
    for (const match of value.matchAll(EXPRESSION)) found.push(match[1].trim());
  } else if (Array.isArray(value)) {
    for (const item of value) expressionsIn(item, found);
  } else if (value && typeof value === "object") {
    for (const item of Object.values(value)) expressionsIn(item, found);
  }
  return found;
}

// The card ids one expression reads through steps.<id>.
export function stepReferences(expression) {
  return new Set([...expression.matchAll(STEP_REF)].map((m) => m[1] ?? m[2]));
}

// The card ids a value's expressions read, in the order they first appear.
export function referencesIn(value) {
  const found = new Set();
  for (const expression of expressionsIn(value)) for (const id of stepReferences(expression)) found.add(id);
  return found;
}

// steps.<oldId> becomes steps.<newId> in the {{ expressions }} of a text; a quoted
// reference stays quoted.
export function renameInExpressions(text, oldId, newId) {
  return text.replace(EXPRESSION, (whole, inner) => {
    const next = inner.replace(STEP_REF, (match, quoted, plain) => {
      if (quoted !== undefined) return quoted === oldId ? match.slice(0, -quoted.length - 2) + JSON.stringify(newId) : match;
      return plain === oldId ? match.slice(0, -plain.length) + newId : match;
    });
    return next === inner ? whole : `{{${next}}}`;
  });
}

// The same, in a text that is JSON when it parses: there the references are inside string
// values (a quoted id written as steps.\"id\"), so each string value is renamed as a value.
const JSON_STRING = /"(?:[^"\\]|\\.)*"(\s*:)?/g;
export function renameInText(text, oldId, newId, { json = false } = {}) {
  if (json) {
    let parsed = true;
    try { JSON.parse(text); } catch { parsed = false; }
    if (parsed) {
      return text.replace(JSON_STRING, (literal, key) => {
        if (key) return literal; // an object key holds no reference
        const value = JSON.parse(literal);
        const next = renameInExpressions(value, oldId, newId);
        return next === value ? literal : JSON.stringify(next);
      });
    }
  }
  return renameInExpressions(text, oldId, newId);
}
