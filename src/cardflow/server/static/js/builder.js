// The flow builder: trigger, cards in order, inputs with references, Test this card, save.
// The page only edits a flow document; the server validates, runs and stores it.
import { ApiError, enc, get, post, put } from "./api.js";
import { authorizeUrl, openConnectionDialog } from "./connections.js";
import {
  badge, clear, confirmDialog, copyButton, fieldError, formatDuration, h, modal,
  nextId, toast,
} from "./dom.js";
import {
  InputError, fromText, inputKind, isFreeform, samplePaths, toText,
} from "./card-inputs.js";
import { bodyView, jsonView } from "./json-view.js";

const FAMILY_ORDER = ["API Connector", "Flow", "Object", "JSON", "Text", "XML"];
const STEP_REF = /steps\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)/g;
const INPUT_LABELS = { url: "URL", status_code: "Status code" };

// ---- the page -----------------------------------------------------------------------

export async function builderPage(root, flowId) {
  const [catalogue, flowView] = await Promise.all([
    get("/cards"), flowId ? get(`/flows/${enc(flowId)}`) : Promise.resolve(null),
  ]);
  let connections = await get("/connections");
  const specs = Object.fromEntries(catalogue.map((c) => [c.id, c]));
  let view = flowView;
  const doc = view ? documentOf(view) : {
    name: "", description: "", trigger: { type: "api_endpoint", alias: "", security: "client_token" },
    save_data: false, enabled: true, cards: [],
  };
  const texts = new Map(); // step -> {input name -> text being edited}
  const uids = new WeakMap(); // step -> a stable key for element ids (focus survives renders)
  let uidCount = 0;
  function uidOf(step) {
    if (!uids.has(step)) { uidCount += 1; uids.set(step, `s${uidCount}`); }
    return uids.get(step);
  }
  const testResults = new Map(); // step -> last Test this card answer
  let sampleText = "{\n  \n}";
  let dirty = false;

  function documentOf(flow) {
    return {
      name: flow.name, description: flow.description || "", trigger: { ...flow.trigger },
      save_data: flow.save_data, enabled: flow.enabled,
      cards: flow.cards.map(normalizeStep),
    };
  }
  // A saved step as the builder edits it: nested cards (For Each, If / Else) become steps too.
  function normalizeStep(raw) {
    const step = { ...raw, connection: connectionName(raw.connection), inputs: { ...(raw.inputs || {}) } };
    for (const name of nestedNames(step)) {
      step.inputs[name] = Array.isArray(raw.inputs?.[name]) ? raw.inputs[name].map(normalizeStep) : [];
    }
    return step;
  }
  function nestedNames(step) { return specs[step.card]?.nested_inputs || []; }
  function* allSteps(list = doc.cards) {
    for (const step of list) {
      yield step;
      for (const name of nestedNames(step)) yield* allSteps(step.inputs[name] || []);
    }
  }
  function connectionName(ref) {
    if (!ref) return null;
    const found = connections.find((c) => c.id === ref || c.name === ref);
    return found ? found.name : ref;
  }
  function textsOf(step) {
    if (!texts.has(step)) {
      const spec = specs[step.card];
      const own = {};
      if (spec && isFreeform(spec)) own["*"] = Object.keys(step.inputs || {}).length ? JSON.stringify(step.inputs, null, 2) : "";
      else if (spec) {
        for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
          if (!nestedNames(step).includes(name)) own[name] = toText(inputKind(name, prop), step.inputs?.[name]);
        }
      }
      texts.set(step, own);
    }
    return texts.get(step);
  }
  function markDirty() {
    dirty = true;
    root.querySelector("#save-status")?.replaceChildren("Unsaved changes");
  }
  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });

  // Reads a step's inputs from what is typed; InputError names the field.
  function stepInputs(step, path) {
    const spec = specs[step.card];
    if (!spec) return step.inputs || {}; // an unknown card: the server names it on save
    const own = textsOf(step);
    if (isFreeform(spec)) {
      const text = (own["*"] || "").trim();
      if (!text) return {};
      let value;
      try { value = JSON.parse(text); } catch { throw new InputError(`${path}.inputs`, "Enter a JSON object, e.g. {\"user\": \"{{ steps.get_user.body.name }}\"}."); }
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new InputError(`${path}.inputs`, "Enter a JSON object of the keys to return.");
      return value;
    }
    const inputs = {};
    for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
      if (nestedNames(step).includes(name)) {
        inputs[name] = (step.inputs[name] || []).map((child, i) => buildStep(child, `${path}.inputs.${name}.${i}`));
        continue;
      }
      const value = fromText(inputKind(name, prop), own[name] || "", prop, `${path}.inputs.${name}`);
      if (value !== undefined) inputs[name] = value;
    }
    return inputs;
  }

  function buildStep(step, path) {
    const out = { id: step.id, card: step.card, inputs: stepInputs(step, path) };
    if (step.connection) out.connection = step.connection;
    if (step.on_error && step.on_error !== "fail") out.on_error = step.on_error;
    if (step.retry) out.retry = step.retry;
    if (step.timeout) out.timeout = step.timeout;
    return out;
  }

  function buildDocument() {
    return {
      name: doc.name.trim(),
      ...(doc.description.trim() ? { description: doc.description.trim() } : {}),
      trigger: doc.trigger.type === "api_endpoint"
        ? { type: "api_endpoint", alias: doc.trigger.alias.trim() || null, security: doc.trigger.security }
        : { type: "manual" },
      save_data: doc.save_data,
      enabled: doc.enabled,
      cards: doc.cards.map((step, index) => buildStep(step, `cards.${index}`)),
    };
  }

  function sampleTrigger() {
    let body = null;
    const text = sampleText.trim();
    if (text && text !== "{}") {
      try { body = JSON.parse(text); } catch { body = text; }
    } else body = {};
    return {
      method: "POST", path: doc.trigger.alias ? `/invoke/${doc.trigger.alias}` : null,
      query: {}, headers: { "content-type": "application/json" }, body, raw: sampleText,
    };
  }

  // ---- errors next to their fields ----
  function clearErrors() {
    root.querySelectorAll(".field-error").forEach((e) => e.remove());
    root.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    root.querySelectorAll(".step.has-error").forEach((e) => e.classList.remove("has-error"));
    clear(root.querySelector("#save-error"));
  }
  function showError(field, message) {
    let holder = null;
    if (field) {
      const parts = field.split(".");
      for (let n = parts.length; n > 0 && !holder; n -= 1) {
        holder = root.querySelector(`[data-field="${CSS.escape(parts.slice(0, n).join("."))}"]`);
      }
    }
    if (!holder) {
      clear(root.querySelector("#save-error"), h("div", { class: "banner banner-error", role: "alert" }, message));
      return;
    }
    holder.append(fieldError(field, message));
    holder.closest(".step")?.classList.add("has-error");
    const input = holder.querySelector("input, select, textarea");
    if (input) input.setAttribute("aria-invalid", "true");
    holder.scrollIntoView({ block: "center", behavior: "smooth" });
    (input || holder).focus?.();
  }

  // ---- saving ----
  async function busy(button, work) {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try { await work(); } finally { button.disabled = false; button.removeAttribute("aria-busy"); }
  }

  async function save() {
    clearErrors();
    let document;
    try { document = buildDocument(); } catch (error) {
      if (error instanceof InputError) { showError(error.field, error.message); return; }
      throw error;
    }
    try {
      view = view ? await put(`/flows/${enc(view.id)}`, document) : await post("/flows", document);
      dirty = false;
      if (!flowId) { flowId = view.id; history.replaceState(null, "", `/flows/${enc(view.id)}`); }
      toast(`Saved “${view.name}”.`, "ok");
      render();
      root.querySelector("#save-status")?.replaceChildren("Saved");
    } catch (error) {
      if (error instanceof ApiError) showError(error.field, error.message);
      else throw error;
    }
  }

  // ---- Test this card ----
  async function testStep(place, resultBox) {
    const { step, path } = place;
    clearErrors();
    let inputs;
    try { inputs = stepInputs(step, path); } catch (error) {
      if (error instanceof InputError) { showError(error.field, error.message); return; }
      throw error;
    }
    const earlier = visibleBefore(place);
    const steps = {};
    for (const other of earlier) {
      const last = testResults.get(other);
      if (last && last.outputs) steps[other.id] = last.outputs;
    }
    const referenced = new Set([...JSON.stringify(inputs).matchAll(STEP_REF)].map((m) => m[1]));
    const missing = [...referenced].filter((id) => !(id in steps));
    const context = { trigger: sampleTrigger(), steps };
    if (place.loop) context.loop = { item: null, index: 0 };
    const body = { connection: step.connection || null, inputs, on_error: step.on_error || "fail", context };
    if (step.retry) body.retry = step.retry;
    if (step.timeout) body.timeout = step.timeout;
    clear(resultBox, h("p", { class: "muted" }, "Running…"));
    try {
      const result = await post(`/cards/${enc(step.card)}/test`, body);
      testResults.set(step, result);
      const typed = resultBox.closest(".step")?.querySelector("[data-typed-outputs]");
      if (typed) typed.value = result.outputs ? JSON.stringify(result.outputs, null, 2) : "";
      clear(resultBox, testResultView(result, missing));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const field = error.field ? `${path}.${error.field}` : null;
      clear(resultBox);
      if (field) showError(field, error.message);
      else clear(resultBox, h("div", { class: "test-result test-failed", role: "alert" }, h("strong", {}, "Could not test: "), error.message));
    }
  }

  function testResultView(result, missing) {
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
      result.error ? h("div", { class: "test-error" }, h("strong", {}, result.error.type || "error"), ": ", result.error.message || "") : null,
      result.error?.body_excerpt ? h("pre", { class: "body-text" }, result.error.body_excerpt) : null,
      isHttp ? [
        h("details", { class: "test-headers" }, h("summary", {}, `Headers (${Object.keys(outputs.headers || {}).length})`),
          h("table", { class: "table table-compact" }, h("tbody", {}, Object.entries(outputs.headers || {}).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, String(v))))))),
        h("div", { class: "test-body" }, h("p", { class: "muted small" }, "Body"), bodyView(outputs.body)),
      ] : (result.outputs ? h("div", { class: "test-body" }, h("p", { class: "muted small" }, "Outputs"), jsonView(result.outputs)) : null),
      result.answer ? h("div", { class: "test-body test-answer" },
        h("p", { class: "muted small" }, `The caller would get: HTTP ${result.answer.status_code}`),
        bodyView(result.answer.body)) : null);
  }

  // ---- reference picker ----
  // The cards a card may refer to: those before it, and before the card that holds it.
  function visibleBefore(place) { return [...place.earlier, ...place.list.slice(0, place.index)]; }

  function referenceOptions(place) {
    const groups = [];
    const trigger = ["trigger.body", "trigger.query", "trigger.headers", "trigger.raw", "trigger.method"];
    const sample = sampleTrigger().body;
    const deeper = [];
    samplePaths("trigger.body", sample, 0, deeper);
    groups.push(["Trigger", [...trigger.slice(0, 1), ...deeper, ...trigger.slice(1)]]);
    if (place.loop) groups.push(["Loop (For Each)", ["loop.item", "loop.index"]]);
    visibleBefore(place).forEach((step) => {
      const spec = specs[step.card];
      const base = `steps.${step.id}`;
      const paths = (spec?.outputs || []).filter((o) => /^[a-z_]+$/.test(o)).map((o) => `${base}.${o}`);
      if (!paths.length) paths.push(base);
      const last = testResults.get(step);
      if (last?.outputs) {
        const found = [];
        samplePaths(base, last.outputs, 0, found);
        for (const p of found) if (!paths.includes(p)) paths.push(p);
      }
      groups.push([`${step.id} — ${spec?.title || step.card}`, paths]);
    });
    return groups;
  }

  // "Insert reference": a button opening a list of the trigger's and earlier cards' outputs
  // (fresh each time, so new test outputs show). Enter or a click inserts; Escape closes.
  // A listbox acts only on an explicit choice: arrowing through it inserts nothing.
  function referencePicker(control, kind, place, label) {
    const listId = `${control.id}-refs`;
    const button = h("button", {
      type: "button", class: "ref-button", id: `${control.id}-ref`, "aria-haspopup": "listbox",
      "aria-expanded": "false", "aria-controls": listId, "aria-label": `Insert a reference into ${label}`,
      title: "Insert a reference to the trigger or an earlier card's output",
    }, "{ } Insert reference");
    const wrap = h("div", { class: "ref" }, button);
    let list = null;
    const close = (refocus) => {
      list?.remove();
      list = null;
      button.setAttribute("aria-expanded", "false");
      if (refocus) button.focus();
    };
    const insert = (path) => {
      const expression = `{{ ${path} }}`;
      const current = control.value;
      // inside JSON the expression goes in as a string; alone it keeps the value's type
      const text = kind === "json" && current.trim() !== "" ? JSON.stringify(expression) : expression;
      const start = control.selectionStart ?? current.length;
      const end = control.selectionEnd ?? current.length;
      control.value = current.slice(0, start) + text + current.slice(end);
      control.dispatchEvent(new Event("input", { bubbles: true }));
      close(false);
      control.focus();
      control.setSelectionRange?.(start + text.length, start + text.length);
    };
    button.addEventListener("click", () => {
      if (list) { close(true); return; }
      list = h("select", { id: listId, class: "ref-list", size: 10, "aria-label": `References for ${label}` },
        referenceOptions(place).map(([group, paths]) => h("optgroup", { label: group }, paths.map((p) => h("option", { value: p }, p)))));
      list.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && list.value) { event.preventDefault(); insert(list.value); }
        if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); close(true); }
        if (event.key === "Tab") close(false);
      });
      list.addEventListener("click", () => { if (list?.value) insert(list.value); });
      list.addEventListener("focusout", () => setTimeout(() => { if (list && document.activeElement !== list) close(false); }, 200));
      wrap.append(list);
      button.setAttribute("aria-expanded", "true");
      list.focus();
    });
    return wrap;
  }

  // ---- rendering ----
  function labelled(field, labelText, control, hint, extra) {
    return h("div", { class: "field", "data-field": field },
      h("label", { for: control.id }, labelText), control, extra || null, hint ? h("p", { class: "hint" }, hint) : null);
  }

  function settingsSection() {
    const nameInput = h("input", { id: "flow-name", value: doc.name, required: true, autocomplete: "off", placeholder: "e.g. Offboard user" });
    nameInput.addEventListener("input", () => { doc.name = nameInput.value; markDirty(); });
    const description = h("input", { id: "flow-description", value: doc.description, autocomplete: "off" });
    description.addEventListener("input", () => { doc.description = description.value; markDirty(); });
    const saveData = h("input", { type: "checkbox", id: "flow-save-data", checked: doc.save_data });
    saveData.addEventListener("change", () => { doc.save_data = saveData.checked; markDirty(); });
    const enabled = h("input", { type: "checkbox", id: "flow-enabled", checked: doc.enabled });
    enabled.addEventListener("change", () => { doc.enabled = enabled.checked; markDirty(); });
    return h("section", { class: "panel", "aria-labelledby": "settings-title" },
      h("h2", { id: "settings-title", class: "panel-title" }, "Flow"),
      h("div", { class: "grid-2" },
        labelled("name", "Name", nameInput),
        labelled("description", "Description", description, "Optional: what the flow is for.")),
      h("div", { class: "checks" },
        h("div", { class: "field field-check", "data-field": "save_data" }, saveData, h("label", { for: "flow-save-data" }, "Save run data"),
          h("p", { class: "hint" }, "Keep each card's inputs and outputs in the run history (secrets are redacted).")),
        h("div", { class: "field field-check", "data-field": "enabled" }, enabled, h("label", { for: "flow-enabled" }, "Enabled"))));
  }

  function triggerSection() {
    const t = doc.trigger;
    const typeId = "trigger-type";
    const typeSelect = h("select", { id: typeId },
      h("option", { value: "api_endpoint", selected: t.type === "api_endpoint" }, "API endpoint — called over HTTP"),
      h("option", { value: "manual", selected: t.type === "manual" }, "Manual — run from here or the CLI"));
    typeSelect.addEventListener("change", () => {
      doc.trigger = typeSelect.value === "api_endpoint"
        ? { type: "api_endpoint", alias: t.alias || "", security: t.security || "client_token" } : { type: "manual", alias: t.alias, security: t.security };
      markDirty();
      render();
    });
    const rows = [labelled("trigger.type", "Trigger", typeSelect)];
    if (t.type === "api_endpoint") {
      const publicUrl = document.querySelector('meta[name="public-url"]')?.content || window.location.origin;
      const alias = h("input", { id: "trigger-alias", value: t.alias || "", autocomplete: "off", spellcheck: "false", placeholder: "offboard-user" });
      alias.addEventListener("input", () => { t.alias = alias.value; markDirty(); });
      const security = h("select", { id: "trigger-security" },
        h("option", { value: "client_token", selected: t.security !== "none" }, "Client token (recommended)"),
        h("option", { value: "none", selected: t.security === "none" }, "None — anyone who can reach cardflow may call it"));
      security.addEventListener("change", () => { t.security = security.value; markDirty(); });
      rows.push(h("div", { class: "grid-2" },
        labelled("trigger.alias", "Alias", alias, `Callers use ${publicUrl.replace(/\/$/, "")}/invoke/<alias>. Letters, digits, - and _.`),
        labelled("trigger.security", "Security", security)));
      if (view && view.invoke_url) rows.push(endpointFacts());
      else rows.push(h("p", { class: "hint" }, "Save the flow to get its invoke URL and client token."));
    }
    const sampleId = "trigger-sample";
    const sample = h("textarea", { id: sampleId, rows: 4, class: "code", spellcheck: "false" });
    sample.value = sampleText;
    sample.addEventListener("input", () => { sampleText = sample.value; });
    rows.push(labelled("sample", "Test data: request body", sample, "JSON used as trigger.body when you test cards here (not saved with the flow)."));
    return h("section", { class: "panel trigger", "aria-labelledby": "trigger-title" },
      h("h2", { id: "trigger-title", class: "panel-title" }, h("span", { class: "step-num", "aria-hidden": "true" }, "⚡"), "Trigger"),
      rows);
  }

  function endpointFacts() {
    const url = h("input", { id: "invoke-url", readonly: true, value: view.invoke_url, class: "code" });
    const parts = [h("div", { class: "field" }, h("label", { for: "invoke-url" }, "Invoke URL"),
      h("div", { class: "input-row" }, url, copyButton(() => view.invoke_url, "Copy URL")))];
    if (view.client_token) {
      const token = h("input", { id: "client-token", type: "password", readonly: true, value: view.client_token, class: "code", autocomplete: "off" });
      const show = h("button", { type: "button", class: "btn btn-small", "aria-pressed": "false", onclick: () => {
        const shown = token.type === "text";
        token.type = shown ? "password" : "text";
        show.textContent = shown ? "Show" : "Hide";
        show.setAttribute("aria-pressed", String(!shown));
      } }, "Show");
      const regenerate = h("button", { type: "button", class: "btn btn-small btn-danger-quiet", onclick: async () => {
        if (!await confirmDialog("Regenerate the client token?", "The current token stops working at once; callers must use the new one.", { confirmLabel: "Regenerate" })) return;
        try { view = await post(`/flows/${enc(view.id)}/client-token`); toast("New client token created.", "ok"); render(); }
        catch (error) { toast(error.message, "error"); }
      } }, "Regenerate");
      parts.push(h("div", { class: "field" }, h("label", { for: "client-token" }, "Client token"),
        h("div", { class: "input-row" }, token, show, copyButton(() => view.client_token, "Copy token"), regenerate),
        h("p", { class: "hint" }, "Callers send it in the x-api-client-token header (or the clientToken query parameter).")));
      parts.push(h("div", { class: "curl" }, h("span", { class: "muted small" }, "Try it:"),
        h("code", { class: "code-line" }, `curl -X POST '${view.invoke_url}' -H "x-api-client-token: $TOKEN" -H 'Content-Type: application/json' -d '${sampleText.trim() || "{}"}'`),
        copyButton(() => `curl -X POST '${view.invoke_url}' -H "x-api-client-token: ${view.client_token}" -H 'Content-Type: application/json' -d '${(sampleText.trim() || "{}").replace(/'/g, "'\\''")}'`, "Copy with token")));
    }
    return h("div", { class: "endpoint" }, parts);
  }

  function connectionField(step, place) {
    const id = `${uidOf(step)}-connection`;
    const select = h("select", { id, class: "conn-select" },
      h("option", { value: "" }, "No connection (no auth)"),
      connections.map((c) => h("option", { value: c.name, selected: c.name === step.connection }, `${c.name}${c.status !== "ready" ? ` (${c.status.replace("_", " ")})` : ""}`)),
      h("option", { value: "__new__" }, "+ New connection…"));
    select.addEventListener("change", async () => {
      if (select.value === "__new__") {
        const created = await openConnectionDialog();
        if (created) {
          connections = await get("/connections");
          step.connection = created.name;
          markDirty();
        }
        render();
        root.querySelector(`[data-step="${CSS.escape(step.id)}"] .conn-select`)?.focus();
        return;
      }
      step.connection = select.value || null;
      markDirty();
      render();
    });
    const current = connections.find((c) => c.name === step.connection);
    const note = current && current.status !== "ready"
      ? h("p", { class: "cell-note" }, current.status === "needs_authorization" ? "This connection needs authorization: " : `This connection has an error: ${current.last_error || ""} `,
        current.auth_type === "oauth" ? h("a", { href: authorizeUrl(current) }, "Authorize") : h("a", { href: "/connections" }, "Connections"))
      : null;
    return h("div", { class: "field", "data-field": `${place.path}.connection` },
      h("label", { for: id }, "Connection"), select, note,
      h("p", { class: "hint" }, "Its credentials are added to every request; the card never sees them."));
  }

  function inputField(step, place, name, prop, required) {
    const own = textsOf(step);
    const kind = inputKind(name, prop);
    const id = `${uidOf(step)}-in-${name}`;
    const title = INPUT_LABELS[name] || prop.title || name;
    let control;
    if (kind === "choice") {
      control = h("select", { id }, h("option", { value: "" }, "—"), prop.enum.map((v) => h("option", { value: v, selected: own[name] === v }, v)));
      control.addEventListener("change", () => { own[name] = control.value; markDirty(); });
    } else {
      const multiline = kind === "json" || kind === "longtext";
      control = multiline ? h("textarea", { id, rows: kind === "json" ? 3 : 4, class: "code", spellcheck: "false" })
        : h("input", { id, autocomplete: "off", spellcheck: "false", class: kind === "text" ? "" : "code" });
      control.value = own[name] || "";
      const example = specs[step.card]?.example?.[name];
      if (example !== undefined) control.placeholder = toText(kind, example).split("\n").slice(0, 3).join(" ");
      control.addEventListener("input", () => { own[name] = control.value; markDirty(); });
    }
    const hints = { json: "JSON, or a {{ reference }}.", number: "A number, or a {{ reference }}.", boolean: "true / false, or a {{ reference }}." };
    return h("div", { class: "field", "data-field": `${place.path}.inputs.${name}`, "data-input": name },
      h("div", { class: "label-row" },
        h("label", { for: id }, title, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
        kind === "choice" ? null : referencePicker(control, kind, place, title)),
      control,
      h("p", { class: "hint" }, [prop.description, hints[kind]].filter(Boolean).join(" ")));
  }

  function freeformField(step, place) {
    const own = textsOf(step);
    const id = `${uidOf(step)}-in-all`;
    const control = h("textarea", { id, rows: 5, class: "code", spellcheck: "false" });
    control.value = own["*"] || "";
    const example = specs[step.card]?.example;
    if (example) control.placeholder = JSON.stringify(example);
    control.addEventListener("input", () => { own["*"] = control.value; markDirty(); });
    return h("div", { class: "field", "data-field": `${place.path}.inputs`, "data-input": "*" },
      h("div", { class: "label-row" }, h("label", { for: id }, "Keys (JSON object)"), referencePicker(control, "json", place, "the keys")),
      control, h("p", { class: "hint" }, "Each key becomes a key of the answer; values may be {{ references }}."));
  }

  function optionsBlock(step, place) {
    const onError = h("select", { id: `${uidOf(step)}-on-error` },
      h("option", { value: "fail", selected: step.on_error !== "continue" }, "Stop the flow (the run fails)"),
      h("option", { value: "continue", selected: step.on_error === "continue" }, "Continue with the next card"));
    onError.addEventListener("change", () => { step.on_error = onError.value; markDirty(); });
    const retries = h("input", { id: `${uidOf(step)}-retry-count`, type: "number", min: 0, max: 10, value: step.retry?.count ?? "", placeholder: "2" });
    retries.addEventListener("input", () => {
      const { count: _old, ...rest } = step.retry || {};
      step.retry = retries.value === "" ? (Object.keys(rest).length ? rest : null) : { ...rest, count: Number(retries.value) };
      markDirty();
    });
    const maxWait = h("input", { id: `${uidOf(step)}-retry-wait`, type: "number", min: 0, max: 600, value: step.retry?.max_wait ?? "", placeholder: "30" });
    maxWait.addEventListener("input", () => {
      const base = step.retry || {};
      step.retry = maxWait.value === "" ? (base.count !== undefined ? { count: base.count } : null) : { ...base, max_wait: Number(maxWait.value) };
      markDirty();
    });
    const timeout = h("input", { id: `${uidOf(step)}-timeout`, type: "number", min: 0.1, max: 3600, step: "any", value: step.timeout ?? "", placeholder: "30" });
    timeout.addEventListener("input", () => { step.timeout = timeout.value === "" ? null : Number(timeout.value); markDirty(); });
    const open = step.on_error === "continue" || step.retry || step.timeout;
    return h("details", { class: "options", open: Boolean(open) },
      h("summary", {}, "On error, retries and timeout"),
      h("div", { class: "grid-4" },
        labelled(`${place.path}.on_error`, "When this card fails", onError),
        labelled(`${place.path}.retry.count`, "Retries (429 / 503)", retries),
        labelled(`${place.path}.retry.max_wait`, "Longest wait (s)", maxWait),
        labelled(`${place.path}.timeout`, "Timeout (s)", timeout)));
  }

  // Values typed for tests: what this card's outputs should be when later cards are tested
  // (instead of running it, e.g. a call that changes something at the service).
  function typedOutputsBlock(step, place) {
    const id = `${uidOf(step)}-test-outputs`;
    const last = testResults.get(step);
    const area = h("textarea", { id, rows: 4, class: "code", spellcheck: "false", "data-typed-outputs": "", placeholder: '{"status_code": 200, "body": {"id": 42}}' });
    area.value = last?.outputs ? JSON.stringify(last.outputs, null, 2) : "";
    const field = `${place.path}.test_outputs`;
    area.addEventListener("change", () => {
      root.querySelectorAll(`[data-error-for="${CSS.escape(field)}"]`).forEach((e) => e.remove());
      const text = area.value.trim();
      if (!text) { testResults.delete(step); return; }
      try {
        testResults.set(step, { ok: true, outputs: JSON.parse(text), typed: true });
      } catch {
        area.closest(".field").append(fieldError(field, "Enter the outputs as JSON."));
      }
    });
    return h("details", { class: "options" },
      h("summary", {}, "Outputs for testing later cards"),
      h("div", { class: "field", "data-field": field },
        h("label", { for: id }, "Outputs (JSON)"), area,
        h("p", { class: "hint" }, "Filled in by “Test this card”; or type them, to test later cards without running this one. Not saved with the flow.")));
  }

  function stepPanel(place) {
    const { step, index, list, path } = place;
    const spec = specs[step.card];
    const idInput = h("input", { id: `${uidOf(step)}-id`, value: step.id, class: "code step-id", autocomplete: "off", spellcheck: "false" });
    let previousId = step.id;
    idInput.addEventListener("input", () => { step.id = idInput.value.trim(); markDirty(); });
    idInput.addEventListener("change", () => {
      if (previousId && step.id && previousId !== step.id) renameReferences(previousId, step.id);
      previousId = step.id;
      render();
    });
    const resultBox = h("div", { class: "test-box", "aria-live": "polite" });
    const last = testResults.get(step);
    if (last && !last.typed) resultBox.append(testResultView(last, []));
    const move = (delta) => {
      const target = index + delta;
      if (target < 0 || target >= list.length) return;
      [list[index], list[target]] = [list[target], list[index]];
      markDirty();
      render();
      root.querySelector(`[data-step="${CSS.escape(step.id)}"] [data-move="${delta < 0 ? "up" : "down"}"]`)?.focus();
    };
    const body = [];
    if (!spec) body.push(h("p", { class: "cell-error" }, `Unknown card ${step.card}.`));
    else {
      if (spec.uses_connection) body.push(connectionField(step, place));
      if (isFreeform(spec)) body.push(freeformField(step, place));
      const required = new Set(spec.inputs.required || []);
      const nested = nestedNames(step);
      for (const [name, prop] of Object.entries(spec.inputs.properties || {})) {
        if (!nested.includes(name)) body.push(inputField(step, place, name, prop, required.has(name)));
      }
      for (const name of nested) body.push(nestedSection(place, name));
      body.push(optionsBlock(step, place));
      body.push(typedOutputsBlock(step, place));
    }
    return h("section", { class: path.includes(".inputs.") ? "panel step step-nested" : "panel step", "data-step": step.id, "data-field": path, "aria-label": `Card ${place.number}: ${spec?.title || step.card}` },
      h("div", { class: "step-head" },
        h("span", { class: "step-num", "aria-hidden": "true" }, place.number),
        h("div", { class: "step-title" }, h("h3", {}, spec ? `${spec.family} · ${spec.title}` : step.card), h("p", { class: "muted small" }, spec?.description || "")),
        h("div", { class: "step-actions" },
          h("button", { type: "button", class: "btn btn-small btn-icon", "data-move": "up", "aria-label": `Move ${step.id} up`, disabled: index === 0, onclick: () => move(-1) }, "↑"),
          h("button", { type: "button", class: "btn btn-small btn-icon", "data-move": "down", "aria-label": `Move ${step.id} down`, disabled: index === list.length - 1, onclick: () => move(1) }, "↓"),
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Remove ${step.id}`, onclick: async () => {
            if (!await confirmDialog(`Remove card “${step.id}”?`, "Later cards that refer to it will need changing.", { confirmLabel: "Remove" })) return;
            list.splice(index, 1);
            markDirty();
            render();
            const next = list[Math.min(index, list.length - 1)];
            (next ? root.querySelector(`[data-step="${CSS.escape(next.id)}"] [data-move="up"]`) : null)?.focus();
            if (!root.contains(document.activeElement)) root.querySelector("#add-card")?.focus();
          } }, "Remove"))),
      h("div", { class: "field field-inline", "data-field": `${path}.id` },
        h("label", { for: idInput.id }, "Card id"), idInput,
        h("span", { class: "hint" }, "Later cards refer to its outputs as ", h("code", {}, `steps.${step.id || "<id>"}`), ".")),
      body,
      h("div", { class: "step-foot" },
        h("button", { type: "button", class: "btn", "data-action": "test-card", onclick: (event) => busy(event.currentTarget, () => testStep(place, resultBox)) }, "▶ Test this card"),
        h("span", { class: "hint" }, "Runs it now with these inputs; references use the test data and earlier cards' last tests.")),
      resultBox);
  }

  // The cards a For Each or If / Else card runs, edited like the flow's own.
  const NESTED_TITLES = { cards: "For each item, run these cards", then: "When true, run", else: "Otherwise, run" };
  function nestedSection(place, name) {
    const { step } = place;
    const list = step.inputs[name] || (step.inputs[name] = []);
    const inner = {
      earlier: visibleBefore(place),
      loop: place.loop || step.card === "list.for_each",
      number: place.number,
    };
    const titleId = `${uidOf(step)}-nested-${name}`;
    return h("div", { class: "nested", "data-field": `${place.path}.inputs.${name}`, "aria-labelledby": titleId, role: "group" },
      h("h4", { id: titleId, class: "nested-title" }, NESTED_TITLES[name] || name),
      containerView(list, `${place.path}.inputs.${name}`, inner),
      h("button", { type: "button", class: "btn btn-small", id: `${uidOf(step)}-add-${name}`, "aria-label": `Add a card to “${NESTED_TITLES[name] || name}” of ${step.id}`, onclick: () => openCardPicker(list) }, "+ Add card here"));
  }

  function containerView(list, path, outer) {
    if (!list.length) {
      return h("p", { class: "muted small nested-empty" }, outer.loop && path.endsWith(".cards") ? "No cards yet: they see loop.item and loop.index." : "No cards yet.");
    }
    return h("div", { class: "steps" }, list.map((step, index) => stepPanel({
      step, index, list, path: `${path}.${index}`, earlier: outer.earlier, loop: outer.loop,
      number: outer.number ? `${outer.number}.${index + 1}` : String(index + 1),
    })));
  }

  // steps.<old> becomes steps.<new> in every card's inputs (as typed), so references hold.
  function renameReferences(oldId, newId) {
    const escaped = oldId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const pattern = new RegExp(`(steps\\s*\\.\\s*)${escaped}(?![A-Za-z0-9_])`, "g");
    let changed = 0;
    for (const other of allSteps()) {
      const own = textsOf(other);
      for (const [name, text] of Object.entries(own)) {
        const next = text.replace(pattern, `$1${newId}`);
        if (next !== text) { own[name] = next; changed += 1; }
      }
    }
    if (changed) toast(`Updated ${changed} reference${changed > 1 ? "s" : ""} to steps.${newId}.`, "ok");
  }

  function uniqueId(base) {
    const clean = base.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([^A-Za-z_])/, "_$1");
    const taken = new Set([...allSteps()].map((c) => c.id));
    if (!taken.has(clean)) return clean;
    let n = 2;
    while (taken.has(`${clean}_${n}`)) n += 1;
    return `${clean}_${n}`;
  }

  function openCardPicker(target = doc.cards) {
    const families = [...new Set(catalogue.map((c) => c.family))].sort((a, b) => {
      const ia = FAMILY_ORDER.indexOf(a); const ib = FAMILY_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
    const list = h("div", { class: "picker-cards", role: "tabpanel", id: "picker-panel" });
    const tabs = h("div", { class: "picker-families", role: "tablist", "aria-label": "Card families", "aria-orientation": "vertical" });
    let dialog;
    const show = (family, focus = false) => {
      tabs.querySelectorAll("button").forEach((b) => {
        const selected = b.dataset.family === family;
        b.setAttribute("aria-selected", String(selected));
        b.tabIndex = selected ? 0 : -1;
        if (selected && focus) b.focus();
      });
      list.setAttribute("aria-label", family);
      clear(list, catalogue.filter((c) => c.family === family).map((spec) =>
        h("button", { type: "button", class: "picker-card", "data-card": spec.id, onclick: () => {
          const step = { id: uniqueId(spec.id.split(".").pop()), card: spec.id, connection: null, inputs: {}, on_error: "fail", retry: null, timeout: null };
          for (const name of spec.nested_inputs || []) step.inputs[name] = [];
          target.push(step);
          markDirty();
          dialog.close();
          render();
          const panel = root.querySelector(`[data-step="${CSS.escape(step.id)}"]`);
          panel?.scrollIntoView({ block: "start" });
          panel?.querySelector("select, input:not(.step-id), textarea")?.focus();
        } }, h("strong", {}, spec.title), h("span", { class: "muted small" }, spec.description))));
    };
    for (const family of families) {
      tabs.append(h("button", { type: "button", role: "tab", class: "picker-family", "data-family": family, "aria-controls": "picker-panel", onclick: () => show(family) }, family));
    }
    tabs.addEventListener("keydown", (event) => {
      const keys = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 };
      if (!(event.key in keys) && event.key !== "Home" && event.key !== "End") return;
      event.preventDefault();
      const at = families.indexOf(document.activeElement?.dataset?.family);
      let next = event.key === "Home" ? 0 : event.key === "End" ? families.length - 1 : at + keys[event.key];
      next = (next + families.length) % families.length;
      show(families[next], true);
    });
    dialog = modal("Add a card", h("div", { class: "picker" }, tabs, list), { wide: true });
    show(families[0], true);
  }

  function actionBar() {
    const saveButton = h("button", { type: "button", class: "btn btn-primary", id: "save-flow", onclick: (event) => busy(event.currentTarget, save) }, view ? "Save" : "Create flow");
    const runNow = view ? h("button", { type: "button", class: "btn", onclick: (event) => busy(event.currentTarget, async () => {
      if (dirty) { toast("Save the flow first: a run uses the saved version.", "error"); return; }
      let inputs = {};
      try { inputs = JSON.parse(sampleText.trim() || "{}"); } catch { toast("The test data is not valid JSON.", "error"); return; }
      try {
        const run = await post(`/flows/${enc(view.id)}/runs`, { inputs: inputs && typeof inputs === "object" && !Array.isArray(inputs) ? inputs : {} });
        window.location.assign(`/runs/${enc(run.id)}`);
      } catch (error) { toast(error.message, "error"); }
    }) }, "Run now") : null;
    return h("div", { class: "builder-bar" },
      h("div", {}, h("a", { href: "/flows", class: "muted" }, "← Flows"), h("h1", {}, view ? view.name : "New flow")),
      h("div", { class: "page-actions" },
        h("span", { id: "save-status", class: "muted small", "aria-live": "polite" }, dirty ? "Unsaved changes" : ""),
        view ? h("a", { class: "btn", href: `/runs?flow=${enc(view.id)}` }, "Run history") : null,
        view ? h("a", { class: "btn", href: `/api/v1/flows/${enc(view.id)}/export`, download: `${view.name.replace(/[^\w.-]+/g, "_")}.yaml` }, "Export") : null,
        runNow, saveButton));
  }

  function render() {
    const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.id : null;
    const steps = doc.cards.length ? containerView(doc.cards, "cards", { earlier: [], loop: false, number: "" }) : null;
    clear(root,
      actionBar(),
      h("div", { id: "save-error" }),
      settingsSection(),
      triggerSection(),
      h("div", { id: "steps" }, steps || h("div", { class: "empty empty-small" },
        h("p", {}, "No cards yet. Add the first one: usually an API Connector card that calls a service."))),
      h("div", { class: "add-card" }, h("button", { type: "button", class: "btn btn-primary", id: "add-card", onclick: () => openCardPicker() }, "+ Add card")));
    if (focused) document.getElementById(focused)?.focus();
  }

  render();
  if (!view) root.querySelector("#flow-name")?.focus();
}
