// The flow document: as the builder edits it (texts as typed) and as the server takes it.
import { InputError, InputErrors, fromText, inputKind, isFreeform, isKeyed, noting, pairValueKind, toText } from "../card-inputs.js";
import { pairsInput } from "./pairs.js";
import { connectionName, nestedNames, walk } from "./state.js";

export function newDocument() {
  return {
    name: "", description: "", trigger: { type: "api_endpoint", alias: "", security: "client_token" },
    save_data: false, enabled: true, cards: [],
  };
}

// A saved flow as the builder edits it: nested cards (For Each, If / Else) become steps too.
export function documentOf(state, flow) {
  const editable = (raw) => ({ ...raw, connection: connectionName(state, raw.connection), inputs: { ...(raw.inputs || {}) } });
  const cards = flow.cards.map(editable);
  for (const step of walk(state, cards)) {
    for (const name of nestedNames(state, step)) {
      step.inputs[name] = Array.isArray(step.inputs[name]) ? step.inputs[name].map(editable) : [];
    }
  }
  return {
    name: flow.name, description: flow.description || "", trigger: { ...flow.trigger },
    save_data: flow.save_data, enabled: flow.enabled, cards,
  };
}

// The text being edited for each of a step's inputs ("*" for a card of free-form keys).
export function textsOf(state, step) {
  if (!state.texts.has(step)) {
    const spec = state.specs[step.card];
    const own = {};
    if (spec && isFreeform(spec)) own["*"] = Object.keys(step.inputs || {}).length ? JSON.stringify(step.inputs, null, 2) : "";
    else if (spec) {
      for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
        if (!nestedNames(state, step).includes(name)) own[name] = toText(inputKind(name, prop), step.inputs?.[name]);
      }
    }
    state.texts.set(step, own);
  }
  return state.texts.get(step);
}

// Reads a step's inputs from what is typed; InputError names the field. With problems (a
// list), each input that cannot be read is noted there and the others are still read.
export function stepInputs(state, step, path, problems = null) {
  const spec = state.specs[step.card];
  if (!spec) return step.inputs || {}; // an unknown card: the server names it on save
  const own = textsOf(state, step);
  if (isFreeform(spec)) return noting(problems, () => freeformInputs(state, step, path, own)) || {};
  const inputs = {};
  for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
    if (nestedNames(state, step).includes(name)) {
      inputs[name] = (step.inputs[name] || []).map((child, i) => buildStep(state, child, `${path}.inputs.${name}.${i}`, problems));
      continue;
    }
    const value = noting(problems, () => {
      const rows = isKeyed(prop) ? pairsInput(state, step, name, pairValueKind(prop), `${path}.inputs.${name}`) : { asRows: false };
      return rows.asRows ? rows.value : fromText(inputKind(name, prop), own[name] || "", prop, `${path}.inputs.${name}`);
    });
    if (value !== undefined) inputs[name] = value;
  }
  return inputs;
}

// Every problem of a step's inputs (and its nested cards') at once.
export function allStepInputs(state, step, path) {
  const problems = [];
  const inputs = stepInputs(state, step, path, problems);
  if (problems.length) throw new InputErrors(problems);
  return inputs;
}

function freeformInputs(state, step, path, own) {
  const rows = pairsInput(state, step, "*", "any", `${path}.inputs`);
  if (rows.asRows) return rows.value || {};
  const text = (own["*"] || "").trim();
  if (!text) return {};
  let value;
  try { value = JSON.parse(text); } catch { throw new InputError(`${path}.inputs`, "Enter a JSON object, e.g. {\"user\": \"{{ steps.get_user.body.name }}\"}."); }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new InputError(`${path}.inputs`, "Enter a JSON object of the keys to return.");
  return value;
}

function buildStep(state, step, path, problems) {
  const out = { id: step.id, card: step.card, inputs: stepInputs(state, step, path, problems) };
  if (step.connection) out.connection = step.connection;
  if (step.on_error && step.on_error !== "fail") out.on_error = step.on_error;
  if (step.retry) out.retry = step.retry;
  if (step.timeout) out.timeout = step.timeout;
  return out;
}

// The document to save; InputErrors names every input that cannot be read.
export function buildDocument(state) {
  const { doc } = state;
  const problems = [];
  const document = {
    name: doc.name.trim(),
    ...(doc.description.trim() ? { description: doc.description.trim() } : {}),
    trigger: buildTrigger(doc.trigger),
    save_data: doc.save_data,
    enabled: doc.enabled,
    cards: doc.cards.map((step, index) => buildStep(state, step, `cards.${index}`, problems)),
  };
  if (problems.length) throw new InputErrors(problems);
  return document;
}

function buildTrigger(t) {
  if (t.type === "api_endpoint") return { type: "api_endpoint", alias: (t.alias || "").trim() || null, security: t.security };
  if (t.type !== "schedule") return { type: "manual" };
  const trigger = { type: "schedule", timezone: (t.timezone || "").trim() || "UTC", catch_up: t.catch_up !== false };
  if (t.repeat === "cron") trigger.cron = (t.cron || "").trim();
  else trigger.every = (t.every || "").trim();
  for (const key of ["start", "end"]) if ((t[key] || "").trim()) trigger[key] = t[key].trim();
  return trigger;
}
