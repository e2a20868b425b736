// Run a flow now with a trigger body the user checks first: the builder's "Run now"
// (prefilled with its test data) and a run page's "Run again with this input".
import { enc, post } from "./api.js";
import { h, modal } from "./dom.js";

// source says where the prefilled body comes from; note (optional) is shown above it.
export function openRunDialog(flowId, bodyText, source, { title = "Run now", note = null } = {}) {
  const id = "run-trigger-body";
  const area = h("textarea", { id, class: "code", rows: 10, spellcheck: "false", "aria-describedby": "run-trigger-hint run-trigger-error" });
  let text = (bodyText || "").trim() || "{}";
  try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as typed; Run says what is wrong */ }
  area.value = text;
  const error = h("p", { class: "form-error", id: "run-trigger-error", role: "alert" });
  const cancel = h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Cancel");
  const run = h("button", { type: "button", class: "btn btn-primary", onclick: async () => {
    if (run.disabled) return;
    let inputs;
    try { inputs = JSON.parse(area.value.trim() || "{}"); } catch (problem) { error.textContent = `Not valid JSON: ${problem.message}`; area.focus(); return; }
    if (!inputs || typeof inputs !== "object" || Array.isArray(inputs)) { error.textContent = "The body must be a JSON object, e.g. {\"email\": \"ada@example.com\"}."; area.focus(); return; }
    run.disabled = true;
    run.setAttribute("aria-busy", "true");
    try {
      const done = await post(`/flows/${enc(flowId)}/runs`, { inputs });
      window.location.assign(`/runs/${enc(done.id)}`);
    } catch (problem) {
      error.textContent = problem.message;
      run.disabled = false;
      run.removeAttribute("aria-busy");
    }
  } }, "Run");
  const dialog = modal(title, h("div", { class: "field" },
    note ? h("p", { class: "banner banner-warn", role: "status" }, note) : null,
    h("label", { for: id }, "Trigger body (JSON)"),
    h("p", { class: "hint", id: "run-trigger-hint" }, `${source ? `${source[0].toUpperCase()}${source.slice(1)}. ` : ""}The run sees it as trigger.body, as if a caller had sent it. Nobody waits for the answer: Close and Return record what a caller would have got.`),
    area, error), { actions: [cancel, run], wide: true });
  area.focus();
  return dialog;
}
