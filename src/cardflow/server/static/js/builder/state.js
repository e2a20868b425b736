// The builder's shared state: one object per page, made here and passed to every section.
// Sections read and change it; state.render (set by index.js) draws the page again.

export function createState({ root, catalogue, view, connections, flowId }) {
  return {
    root,
    catalogue,
    specs: Object.fromEntries(catalogue.map((c) => [c.id, c])),
    connections,
    flowId, // null until a new flow is first saved
    view, // the flow as the server last returned it, or null for a new one
    doc: null, // the flow document being edited (index.js fills it in)
    texts: new Map(), // step -> {input name -> text being edited}
    pairs: new WeakMap(), // step -> {input name -> [{key, value}] rows, or null: edited as JSON}
    uids: new WeakMap(), // step -> a stable key for element ids (focus survives renders)
    uidCount: 0,
    testResults: new Map(), // step -> last Test this card answer
    sampleText: "{\n  \n}",
    dirty: false,
    render: () => {},
  };
}

export function uidOf(state, step) {
  if (!state.uids.has(step)) { state.uidCount += 1; state.uids.set(step, `s${state.uidCount}`); }
  return state.uids.get(step);
}

// The inputs of a card that hold cards (For Each's cards, If / Else's then and else).
export function nestedNames(state, step) { return state.specs[step.card]?.nested_inputs || []; }

// Every step in a list and, after each, the steps nested in its inputs, depth first.
// A nested list is read only once its step has been yielded, so a caller may replace it.
export function* walk(state, list = state.doc.cards) {
  for (const step of list) {
    yield step;
    for (const name of nestedNames(state, step)) yield* walk(state, step.inputs[name] || []);
  }
}

export function connectionName(state, ref) {
  if (!ref) return null;
  const found = state.connections.find((c) => c.id === ref || c.name === ref);
  return found ? found.name : ref;
}

export function markDirty(state) {
  state.dirty = true;
  state.root.querySelector("#save-status")?.replaceChildren("Unsaved changes");
}
