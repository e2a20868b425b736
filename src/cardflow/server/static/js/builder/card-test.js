// "Test this card": runs one card now with its inputs as typed, the test data as trigger and
// earlier cards' last test outputs as steps, and shows the answer under the card.
import { ApiError, enc, post } from "../api.js";
import { InputError, pathPart } from "../card-inputs.js";
import { badge, clear, copyButton, formatDuration, h, modal, nextId, toast } from "../dom.js";
import { bodyView, jsonView } from "../json-view.js";
import { allStepInputs } from "./document.js";
import { clearErrors, showError, showErrors } from "./fields.js";
import { pickReference, visibleBefore } from "./references.js";
import { referencesIn } from "./step-refs.js";
import { sampleTrigger } from "./trigger.js";
import { keepTests } from "./kept-tests.js";

export async function testStep(state, place, resultBox) {
  const { step, path } = place;
  clearErrors(state);
  let inputs;
  try { inputs = allStepInputs(state, step, path); } catch (error) {
    if (error instanceof InputError) { showErrors(state, error.all || [error]); return; }
    throw error;
  }
  const earlier = visibleBefore(place);
  const steps = {};
  for (const other of earlier) {
    const last = state.testResults.get(other);
    if (last && last.outputs) steps[other.id] = last.outputs;
  }
  const missing = [...referencesIn(inputs)].filter((id) => !(id in steps));
  const context = { trigger: sampleTrigger(state), steps };
  if (place.loop) context.loop = { item: null, index: 0 };
  const body = { connection: step.connection || null, inputs, on_error: step.on_error || "fail", context };
  if (state.view) body.flow = state.view.id; // listed under this flow's tests in the run history
  if (step.retry) body.retry = step.retry;
  if (step.timeout) body.timeout = step.timeout;
  clear(resultBox, h("p", { class: "muted" }, "Running…"));
  try {
    const result = await post(`/cards/${enc(step.card)}/test`, body);
    const pinned = state.testResults.get(step)?.pinned;
    if (pinned) {
      // the pinned outputs stay what later cards see; this answer is shown, not kept
      clear(resultBox, h("p", { class: "banner banner-warn", role: "status" }, "Pinned outputs kept: later cards' tests still use them. Unpin to use this answer instead."),
        testResultView(result, missing));
      return;
    }
    state.testResults.set(step, result);
    keepTests(state);
    const typed = resultBox.closest(".step")?.querySelector("[data-typed-outputs]");
    if (typed) typed.value = result.outputs ? JSON.stringify(result.outputs, null, 2) : "";
    clear(resultBox, testResultView(result, missing, outputPick(state, step)));
    const pin = resultBox.closest(".step")?.querySelector(`[data-pin-for="${CSS.escape(step.id)}"]`);
    pin?.replaceWith(pinButton(state, step));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // an unknown card (card_id in the URL) is shown where Save shows it: at the card
    const field = error.field ? `${path}.${error.field === "card_id" ? "card" : error.field}` : null;
    clear(resultBox);
    if (field) showError(state, field, error.message);
    else clear(resultBox, h("div", { class: "test-result test-failed", role: "alert" }, h("strong", {}, "Could not test: "), error.message));
  }
}

// "Copy as cURL": the card's request (inputs as typed) as a curl command, made by the server
// from the connection as users see it, so its secrets are placeholders (<password>, …).
export async function showAsCurl(state, place) {
  const { step, path } = place;
  clearErrors(state);
  let inputs;
  try { inputs = allStepInputs(state, step, path); } catch (error) {
    if (error instanceof InputError) { showErrors(state, error.all || [error]); return; }
    throw error;
  }
  let answer;
  try {
    answer = await post(`/cards/${enc(step.card)}/curl`, { connection: step.connection || null, inputs });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    toast(error.message, "error");
    return;
  }
  const id = nextId("curl");
  const text = h("textarea", { id, class: "code curl-command", rows: Math.min(12, answer.command.split("\n").length + 1), readonly: true, spellcheck: "false" });
  text.value = answer.command;
  modal(`Copy as cURL: ${step.id}`,
    h("div", { class: "field" }, h("label", { for: id }, "curl command"), text,
      h("p", { class: "hint" }, "The connection's secrets are placeholders (<password>, <header_value>, <access_token>); {{ }} references are left as typed.")),
    { actions: [copyButton(() => answer.command, "Copy")], wide: true });
  text.focus();
  text.select();
}

// pick: {base: "steps.<id>", onPick(path)} makes the output's keys insert references.
export function testResultView(result, missing, pick = null) {
  const under = (key) => (pick ? { ...pick, base: `${pick.base}.${key}` } : null);
  const outputs = result.outputs || {};
  const isHttp = outputs && "status_code" in outputs && "body" in outputs;
  const head = h("div", { class: "test-head" },
    badge(result.ok ? "succeeded" : "failed"),
    isHttp ? h("span", { class: "fact test-status" }, h("span", { class: "muted" }, "HTTP "), String(outputs.status_code)) : null,
    result.error?.status_code && !isHttp ? h("span", { class: "fact test-status" }, h("span", { class: "muted" }, "HTTP "), String(result.error.status_code)) : null,
    h("span", { class: "fact" }, h("span", { class: "muted" }, "Duration "), h("span", { class: "test-duration" }, formatDuration(result.duration_ms))),
    result.run_id ? h("a", { href: `/runs/${enc(result.run_id)}`, class: "fact" }, "In run history") : null);
  return h("div", { class: `test-result ${result.ok ? "test-ok" : "test-failed"}`, "data-test-result": result.ok ? "ok" : "failed" },
    head,
    missing.length ? h("p", { class: "cell-note" }, `No test output yet for ${missing.join(", ")}: test ${missing.length > 1 ? "those cards" : "that card"} first so the reference has a value.`) : null,
    result.ok && outputs.found === false ? h("p", { class: "banner banner-warn test-warning", role: "status" },
      "The path matched nothing here, so the output is null. Check the path against the object above, or set “On missing” to fail so a run stops instead of going on with null.") : null,
    result.error ? h("div", { class: "test-error" }, h("strong", {}, result.error.type || "error"), ": ", result.error.message || "") : null,
    result.error?.body_excerpt ? h("pre", { class: "body-text" }, result.error.body_excerpt) : null,
    isHttp ? [
      h("details", { class: "test-headers" }, h("summary", {}, `Headers (${Object.keys(outputs.headers || {}).length})`),
        h("table", { class: "table table-compact" }, h("tbody", {}, Object.entries(outputs.headers || {}).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))))))),
      h("div", { class: "test-body" }, h("p", { class: "muted small" }, "Body"), bodyView(outputs.body, under("body"))),
    ] : (result.outputs ? h("div", { class: "test-body" }, h("p", { class: "muted small" }, "Outputs"), jsonView(result.outputs, pick)) : null),
    pick && result.outputs ? h("p", { class: "hint" }, "Click a key to insert its {{ reference }} into the input of a later card you were last in.") : null,
    result.curl ? h("details", { class: "test-curl" },
      h("summary", {}, "Request as cURL"),
      h("pre", { class: "code curl-command" }, result.curl),
      h("p", { class: "hint" }, "As the test sent it, {{ }} filled in; the connection's secrets are placeholders."),
      copyButton(() => result.curl, "Copy as cURL")) : null,
    result.answer ? h("div", { class: "test-body test-answer" },
      h("p", { class: "muted small" }, `The caller would get: HTTP ${result.answer.status_code}`),
      bodyView(result.answer.body)) : null);
}

// A test output's keys insert references to this card's outputs.
export function outputPick(state, step) {
  return {
    base: `steps${pathPart(step.id)}`,
    onPick: (path, button) => pickReference(state, button.closest(".step"), path),
  };
}

// Pin: this card's last outputs stay what later cards' tests see (as n8n pins a node's
// data), until unpinned; testing it again shows the new answer beside them.
export function pinButton(state, step) {
  const last = state.testResults.get(step);
  if (!last?.outputs) return h("span", { "data-pin-for": step.id, hidden: true });
  return h("button", {
    "data-pin-for": step.id,
    type: "button", class: "btn btn-quiet", "data-action": "pin", "aria-pressed": last.pinned ? "true" : "false",
    onclick: () => {
      if (last.pinned) delete last.pinned; else last.pinned = true;
      keepTests(state);
      state.render();
      state.root.querySelector(`[data-pin-for="${CSS.escape(step.id)}"]`)?.focus();
    },
  }, last.pinned ? "Unpin outputs" : "Pin outputs");
}
