// The trigger: API endpoint, schedule or manual, the invoke URL, client token and curl line of a
// saved endpoint, and the test data that stands in for a request when cards are tested.
import { keepTests } from "./kept-tests.js";
import { enc, post } from "../api.js";
import { clear, confirmDialog, copyButton, h, toast } from "../dom.js";
import { labelled } from "./fields.js";
import { markDirty } from "./state.js";

// The request the test data stands for: trigger.* when a card is tested here.
export function sampleTrigger(state) {
  const { sampleText, doc } = state;
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

export function triggerSection(state) {
  const t = state.doc.trigger;
  const typeId = "trigger-type";
  const typeSelect = h("select", { id: typeId },
    h("option", { value: "api_endpoint", selected: t.type === "api_endpoint" }, "API endpoint — called over HTTP"),
    h("option", { value: "schedule", selected: t.type === "schedule" }, "Schedule — runs on its own (cron or every…)"),
    h("option", { value: "manual", selected: t.type === "manual" }, "Manual — run from here or the CLI"));
  typeSelect.addEventListener("change", () => {
    const type = typeSelect.value;
    if (type === "api_endpoint") state.doc.trigger = { type, alias: t.alias || "", security: t.security || "client_token" };
    else if (type === "schedule") state.doc.trigger = { type, repeat: "every", every: "5m", cron: "0 9 * * 1-5", timezone: localZone(), catch_up: true };
    else state.doc.trigger = { type: "manual", alias: t.alias, security: t.security };
    markDirty(state);
    state.render();
  });
  const rows = [labelled("trigger.type", "Trigger", typeSelect)];
  if (t.type === "schedule") rows.push(scheduleFields(state, t));
  if (t.type === "api_endpoint") {
    const publicUrl = document.querySelector('meta[name="public-url"]')?.content || window.location.origin;
    const alias = h("input", { id: "trigger-alias", value: t.alias || "", autocomplete: "off", spellcheck: "false", placeholder: "offboard-user" });
    alias.addEventListener("input", () => { t.alias = alias.value; markDirty(state); });
    const security = h("select", { id: "trigger-security" },
      h("option", { value: "client_token", selected: t.security !== "none" }, "Client token (recommended)"),
      h("option", { value: "none", selected: t.security === "none" }, "None — anyone who can reach cardflow may call it"));
    security.addEventListener("change", () => { t.security = security.value; markDirty(state); });
    rows.push(h("div", { class: "grid-2" },
      labelled("trigger.alias", "Alias", alias, `Callers use ${publicUrl.replace(/\/$/, "")}/invoke/<alias>. Letters, digits, - and _.`),
      labelled("trigger.security", "Security", security)));
    if (state.view && state.view.invoke_url) rows.push(endpointFacts(state));
    else rows.push(h("p", { class: "hint" }, "Save the flow to get its invoke URL and client token."));
  }
  const sampleId = "trigger-sample";
  const sample = h("textarea", { id: sampleId, rows: 4, class: "code", spellcheck: "false" });
  sample.value = state.sampleText;
  sample.addEventListener("input", () => { state.sampleText = sample.value; keepTests(state); });
  rows.push(labelled("sample", "Test data: request body", sample, "JSON used as trigger.body when you test cards here (kept for this flow, not in its file)."));
  return h("section", { class: "panel trigger", "aria-labelledby": "trigger-title" },
    h("h2", { id: "trigger-title", class: "panel-title" }, h("span", { class: "step-num", "aria-hidden": "true" }, "⚡"), "Trigger"),
    rows);
}

// A saved endpoint: its invoke URL, its client token (shown on request, regenerated on
// request) and a curl line to try it with the test data.
function endpointFacts(state) {
  const { view, sampleText } = state;
  const url = h("input", { id: "invoke-url", readonly: true, value: view.invoke_url, class: "code" });
  const parts = [h("div", { class: "field" }, h("label", { for: "invoke-url" }, "Invoke URL"),
    h("div", { class: "input-row" }, url, copyButton(() => state.view.invoke_url, "Copy URL")))];
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
      try { state.view = await post(`/flows/${enc(state.view.id)}/client-token`); toast("New client token created.", "ok"); state.render(); }
      catch (error) { toast(error.message, "error"); }
    } }, "Regenerate");
    parts.push(h("div", { class: "field" }, h("label", { for: "client-token" }, "Client token"),
      h("div", { class: "input-row" }, token, show, copyButton(() => state.view.client_token, "Copy token"), regenerate),
      h("p", { class: "hint" }, "Callers send it in the x-api-client-token header (or the clientToken query parameter).")));
    parts.push(h("div", { class: "curl" }, h("span", { class: "muted small" }, "Try it:"),
      h("code", { class: "code-line" }, `curl -X POST '${view.invoke_url}' -H "x-api-client-token: $TOKEN" -H 'Content-Type: application/json' -d '${sampleText.trim() || "{}"}'`),
      copyButton(() => `curl -X POST '${state.view.invoke_url}' -H "x-api-client-token: ${state.view.client_token}" -H 'Content-Type: application/json' -d '${(state.sampleText.trim() || "{}").replace(/'/g, "'\\''")}'`, "Copy with token")));
  }
  return h("div", { class: "endpoint" }, parts);
}

function localZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch { return "UTC"; }
}

// A schedule: every N s/m/h/d, or 5-field cron in a time zone; optional start and end;
// catch-up; and the next five times it fires, asked of the server as the fields change.
function scheduleFields(state, t) {
  if (!t.repeat) t.repeat = t.cron ? "cron" : "every";
  const changed = () => { markDirty(state); preview(); };
  const repeat = h("select", { id: "trigger-repeat" },
    h("option", { value: "every", selected: t.repeat === "every" }, "Every…"),
    h("option", { value: "cron", selected: t.repeat === "cron" }, "Cron expression"));
  repeat.addEventListener("change", () => { t.repeat = repeat.value; markDirty(state); state.render(); });
  const rule = t.repeat === "cron"
    ? h("input", { id: "trigger-cron", value: t.cron || "", class: "code", spellcheck: "false", autocomplete: "off", placeholder: "*/15 * * * *" })
    : h("input", { id: "trigger-every", value: t.every || "", class: "code", spellcheck: "false", autocomplete: "off", placeholder: "30s, 5m, 2h, 1d" });
  rule.addEventListener("input", () => { t[t.repeat] = rule.value; changed(); });
  const zone = h("input", { id: "trigger-timezone", value: t.timezone || "UTC", list: "time-zones", spellcheck: "false", autocomplete: "off" });
  zone.addEventListener("input", () => { t.timezone = zone.value; changed(); });
  let zones = [];
  try { zones = Intl.supportedValuesOf("timeZone"); } catch { zones = ["UTC"]; }
  const zoneList = h("datalist", { id: "time-zones" }, zones.map((name) => h("option", { value: name })));
  const bound = (key, label) => {
    const input = h("input", { id: `trigger-${key}`, value: t[key] || "", class: "code", spellcheck: "false", autocomplete: "off", placeholder: "2026-12-01T09:00:00+01:00" });
    input.addEventListener("input", () => { t[key] = input.value; changed(); });
    return labelled(`trigger.${key}`, label, input);
  };
  const catchUp = h("input", { id: "trigger-catch-up", type: "checkbox", checked: t.catch_up !== false });
  catchUp.addEventListener("change", () => { t.catch_up = catchUp.checked; markDirty(state); });
  const upcoming = h("ol", { id: "schedule-next", class: "schedule-next", "aria-live": "polite" });
  let timer = null;
  function preview() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const trigger = { type: "schedule", timezone: (t.timezone || "").trim() || "UTC" };
      if (t.repeat === "cron") trigger.cron = (t.cron || "").trim(); else trigger.every = (t.every || "").trim();
      for (const key of ["start", "end"]) if ((t[key] || "").trim()) trigger[key] = t[key].trim();
      try {
        const answer = await post("/flows/schedule-preview", { trigger });
        clear(upcoming, answer.next.length
          ? answer.next.map((at) => h("li", {}, new Date(at).toLocaleString(undefined, { timeZone: trigger.timezone, dateStyle: "medium", timeStyle: "medium" }), ` (${trigger.timezone})`))
          : [h("li", { class: "muted" }, "It never fires again (its end has passed).")]);
      } catch (error) {
        clear(upcoming, h("li", { class: "field-error-text" }, error.message));
      }
    }, 250);
  }
  preview();
  return h("div", { class: "schedule" },
    h("div", { class: "grid-2" },
      labelled("trigger.repeat", "Repeat", repeat),
      t.repeat === "cron"
        ? labelled("trigger.cron", "Cron", rule, "Minute hour day month weekday, e.g. 0 9 * * 1-5 (9:00 on weekdays), in the time zone below.")
        : labelled("trigger.every", "Every", rule, "A number and s, m, h or d; counted from the start time (or from 1970).")),
    h("div", { class: "grid-2" },
      labelled("trigger.timezone", "Time zone", zone, "Daylight saving is handled as cron does: a time skipped runs after the gap, a repeated one once.", zoneList),
      h("div", { class: "field", "data-field": "trigger.catch_up" },
        h("label", { class: "checkbox" }, catchUp, " Catch up: a time missed while no worker ran still runs once"))),
    h("div", { class: "grid-2" }, bound("start", "Start (optional)"), bound("end", "End (optional)")),
    h("div", { class: "field" }, h("span", { class: "label" }, "Next five times"), upcoming));
}
