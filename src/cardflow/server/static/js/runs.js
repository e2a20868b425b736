// Run history (overall or per flow) and a run's page with each card, live while it runs.
import { enc, get, postAsync } from "./api.js";
import { badge, clear, emptyState, formatDuration, formatTime, h, pageHeader, runDuration, toast } from "./dom.js";
import { bodyView, jsonView } from "./json-view.js";
import { openRunDialog } from "./run-dialog.js";

const TRIGGERS = { api_endpoint: "API endpoint", manual: "Manual", schedule: "Schedule", card_test: "Card test (builder)" };

async function flowNames() {
  const flows = await get("/flows");
  return { flows, names: Object.fromEntries(flows.map((f) => [f.id, f.name])) };
}

function runTitle(run, names) {
  if (run.flow_id) return names[run.flow_id] || `Deleted flow (${run.flow_id})`;
  if (run.trigger === "card_test" && run.cards[0]) return `Test of ${run.cards[0].card}`;
  return "—";
}

const PAGE = 50;
const STATUSES = { succeeded: "Succeeded", failed: "Failed", running: "Running", queued: "Queued" };

function runRow(run, names) {
  return h("tr", { "data-run": run.id },
    h("td", { class: "nowrap" }, h("a", { href: `/runs/${enc(run.id)}`, class: "strong-link" }, formatTime(run.started_at))),
    h("td", {}, runTitle(run, names)),
    h("td", {}, TRIGGERS[run.trigger] || run.trigger),
    h("td", {}, badge(run.status), run.error ? h("p", { class: "cell-error" }, run.error.message || "") : null),
    h("td", { class: "nowrap" }, formatDuration(runDuration(run))),
    h("td", {}, String(run.cards.length)));
}

// Run history: filters kept in the address (so a filtered list can be shared or reloaded),
// a run id search, and older runs a page at a time.
export async function runsPage(root) {
  const params = new URLSearchParams(window.location.search);
  const { flows, names } = await flowNames();
  const select = (id, label, all, options, value) => {
    const control = h("select", { id, "data-filter": id.replace("run-filter-", "") },
      h("option", { value: "" }, all),
      Object.entries(options).map(([key, text]) => h("option", { value: key, selected: key === value }, text)));
    return [h("label", { for: id, class: "inline-label" }, label), control];
  };
  const [flowLabel, flowFilter] = select("run-filter", "Flow", "All flows",
    Object.fromEntries(flows.map((f) => [f.id, f.name])), params.get("flow") || "");
  const [statusLabel, statusFilter] = select("run-filter-status", "Status", "Any status", STATUSES, params.get("status") || "");
  const [triggerLabel, triggerFilter] = select("run-filter-trigger", "Trigger", "Any trigger", TRIGGERS, params.get("trigger") || "");
  const sinceId = "run-filter-since";
  const since = h("input", { type: "date", id: sinceId, value: params.get("since") || "" });
  const findId = "run-find";
  const find = h("input", { id: findId, type: "search", placeholder: "run_…", autocomplete: "off", spellcheck: "false" });
  const findNote = h("span", { class: "form-error", id: "run-find-error", role: "alert" });
  const findForm = h("form", { class: "inline-form", onsubmit: async (event) => {
    event.preventDefault();
    const id = find.value.trim();
    if (!id) return;
    try { await get(`/runs/${enc(id)}`); window.location.assign(`/runs/${enc(id)}`); }
    catch (error) { findNote.textContent = error.message; }
  } }, h("label", { for: findId, class: "inline-label" }, "Run id"), find, h("button", { type: "submit", class: "btn" }, "Open"), findNote);
  const controls = [flowFilter, statusFilter, triggerFilter, since];
  const list = h("div", {});
  const more = h("div", { class: "more-runs" });
  clear(root,
    pageHeader("Run history", "Newest first. Runs are kept for 30 days (CARDFLOW_RUN_RETENTION_DAYS). The builder's “Test this card” runs are apart: choose Trigger “Card test (builder)” (with a flow, that flow's tests)."),
    h("div", { class: "run-filters" }, flowLabel, flowFilter, statusLabel, statusFilter, triggerLabel, triggerFilter,
      h("label", { for: sinceId, class: "inline-label" }, "Since"), since),
    findForm, list, more);
  let timer = null;
  let latest = 0; // only the newest request may draw: a slow older one is dropped

  function query() {
    const q = new URLSearchParams();
    if (flowFilter.value) q.set("flow_id", flowFilter.value);
    if (statusFilter.value) q.set("status", statusFilter.value);
    if (triggerFilter.value) q.set("trigger", triggerFilter.value);
    else q.set("card_tests", "false"); // the builder's tests are apart: Trigger “Card test” lists them
    if (since.value) q.set("since", new Date(`${since.value}T00:00:00`).toISOString());
    return q;
  }
  function remember() {
    const shown = new URLSearchParams();
    if (flowFilter.value) shown.set("flow", flowFilter.value);
    if (statusFilter.value) shown.set("status", statusFilter.value);
    if (triggerFilter.value) shown.set("trigger", triggerFilter.value);
    if (since.value) shown.set("since", since.value);
    history.replaceState(null, "", shown.toString() ? `/runs?${shown}` : "/runs");
  }
  controls.forEach((control) => control.addEventListener("change", () => { remember(); load(); }));

  async function page(before) {
    const q = query();
    q.set("limit", String(PAGE));
    if (before) q.set("before", before);
    return get(`/runs?${q}`);
  }

  function moreButton(runs, body) {
    clear(more, runs.length === PAGE ? h("button", { type: "button", class: "btn", id: "older-runs", onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const older = await page(runs[runs.length - 1].id);
        body.append(...older.map((run) => runRow(run, names)));
        moreButton(older, body);
      } catch (error) { button.disabled = false; toast(error.message, "error"); }
    } }, "Older runs") : null);
  }

  async function load() {
    clearTimeout(timer);
    latest += 1;
    const mine = latest;
    let runs;
    try {
      runs = await page(null);
    } catch (error) {
      if (mine === latest) clear(list, h("div", { class: "banner banner-error", role: "alert" }, error.message));
      return;
    }
    if (mine !== latest) return;
    const filtered = controls.some((control) => control.value);
    if (!runs.length) {
      clear(more);
      clear(list, filtered
        ? emptyState("No runs match", "No run matches these filters.", h("a", { class: "btn", href: "/runs" }, "Show all runs"))
        : emptyState("No runs yet", "Runs appear here when a flow runs or a card is tested.", h("a", { class: "btn", href: "/flows" }, "Go to Flows")));
      return;
    }
    const body = h("tbody", {}, runs.map((run) => runRow(run, names)));
    clear(list, h("table", { class: "table", id: "runs-table" },
      h("thead", {}, h("tr", {}, ["Started", "Flow", "Trigger", "Status", "Duration", "Cards"].map((c) => h("th", { scope: "col" }, c)))),
      body));
    moreButton(runs, body);
    if (runs.some((r) => r.status === "running" || r.status === "queued")) timer = setTimeout(load, 2000);
  }
  window.addEventListener("pagehide", () => clearTimeout(timer));
  await load();
}

function outputsView(outputs) {
  if (outputs === null || outputs === undefined) return h("p", { class: "muted" }, "—");
  if (typeof outputs !== "object" || !("body" in outputs)) return jsonView(outputs);
  const { body, ...rest } = outputs; // an HTTP answer: its body as JSON or as text
  return h("div", {}, jsonView(rest), h("p", { class: "muted small" }, "Body"), bodyView(body));
}

// What the upstream answered when a card failed on its answer (redacted like all run data):
// its status, headers and the start of its body.
function upstreamAnswer(error) {
  if (!error || (error.status_code == null && error.headers == null && error.body_excerpt == null)) return null;
  return h("div", { class: "upstream-answer" },
    h("p", { class: "muted small" }, "The upstream’s response:", error.status_code != null ? h("strong", {}, ` HTTP ${error.status_code}`) : null,
      error.retryable ? " (retryable)" : null),
    error.headers ? h("details", { "data-key": "error-headers", open: true }, h("summary", {}, "Response headers"), jsonView(error.headers)) : null,
    error.body_excerpt != null ? h("details", { "data-key": "error-body", open: true }, h("summary", {}, "Response body (start)"), h("pre", { class: "body-excerpt" }, String(error.body_excerpt))) : null);
}

function cardRow(card) {
  const error = card.error ? (card.error.message || JSON.stringify(card.error)) : null;
  const hasData = card.inputs !== null || card.outputs !== null;
  return h("section", { class: "run-card", "data-card": card.id },
    h("div", { class: "run-card-head" },
      h("h3", {}, card.id, " ", h("span", { class: "muted card-type" }, card.card)),
      h("div", { class: "run-card-facts" },
        badge(card.status),
        h("span", { class: "fact" }, h("span", { class: "muted" }, "Duration "), h("span", { class: "card-duration" }, formatDuration(card.duration_ms))),
        card.status_code ? h("span", { class: "fact" }, h("span", { class: "muted" }, "HTTP "), String(card.status_code)) : null,
        card.pages != null ? h("span", { class: "fact card-pages" }, String(card.pages), h("span", { class: "muted" }, card.pages === 1 ? " page" : " pages")) : null)),
    error ? h("p", { class: "cell-error" }, error) : null,
    card.status === "failed" ? upstreamAnswer(card.error) : null,
    hasData ? h("div", { class: "io" },
      h("details", { "data-key": `${card.id}:inputs` }, h("summary", {}, "Inputs"), card.inputs !== null ? jsonView(card.inputs) : h("p", { class: "muted" }, "—")),
      h("details", { "data-key": `${card.id}:outputs` }, h("summary", {}, "Outputs"), outputsView(card.outputs)))
      : null);
}

// The flow's top-level cards a finished run never reached (as the flow is saved now).
function notReached(run, flow) {
  if (!flow || run.status === "running" || run.status === "queued") return [];
  const ran = new Set(run.cards.map((card) => card.id));
  const cards = flow.document?.cards || flow.cards || [];
  const last = Math.max(-1, ...cards.map((card, index) => (ran.has(card.id) ? index : -1)));
  return cards.slice(last + 1).filter((card) => !ran.has(card.id));
}

function notReachedRow(card) {
  return h("section", { class: "run-card run-card-not-reached", "data-card": card.id },
    h("div", { class: "run-card-head" },
      h("h3", {}, card.id, " ", h("span", { class: "muted card-type" }, card.card)),
      h("div", { class: "run-card-facts" }, h("span", { class: "badge badge-skipped" }, "Not reached"))));
}

export async function runPage(root, runId) {
  const { names } = await flowNames();
  let flow = null;
  let timer = null;
  let shown = "";
  let failures = 0;
  async function load() {
    let run;
    try {
      run = await get(`/runs/${enc(runId)}`);
      failures = 0;
    } catch (error) {
      if (!shown) throw error;
      failures += 1;
      const live = root.querySelector(".live");
      if (live) live.textContent = ` live updates paused: ${error.message}`;
      timer = setTimeout(load, Math.min(30000, 1000 * 2 ** failures));
      return;
    }
    const live = run.status === "running" || run.status === "queued";
    if (!live && run.flow_id && names[run.flow_id] && flow === null) {
      try { flow = await get(`/flows/${enc(run.flow_id)}`); } catch { flow = false; }
    }
    const snapshot = JSON.stringify(run);
    if (snapshot !== shown) {
      shown = snapshot;
      // keep what the reader opened, and where the keyboard was
      const open = new Set([...root.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
      const focusKey = document.activeElement?.closest?.("[data-key]")?.dataset.key;
      draw(run, live);
      root.querySelectorAll("details[data-key]").forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
      if (focusKey) root.querySelector(`[data-key="${CSS.escape(focusKey)}"] summary`)?.focus();
    }
    if (live) timer = setTimeout(load, 1000);
  }
  async function retry(button, original) {
    button.disabled = true;
    const note = root.querySelector("#retry-error");
    try {
      const again = await postAsync(`/runs/${enc(runId)}/retry${original ? "?original=true" : ""}`);
      window.location.assign(`/runs/${enc(again.id)}`);
    } catch (error) {
      button.disabled = false;
      if (note) note.textContent = error.message;
    }
  }
  function draw(run, live) {
    const retryButton = run.status === "failed" && run.flow_id
      ? h("button", { class: "btn btn-primary", type: "button", id: "retry-run", title: "A new run goes on from the failed card, with the earlier cards' outputs, using the flow as saved now.", onclick: (event) => retry(event.currentTarget, false) }, "Retry from failed card")
      : null;
    // what the run was started with, to run the flow again with it (or edited)
    const body = run.trigger_data && "body" in run.trigger_data ? run.trigger_data.body : undefined;
    const again = run.flow_id && run.trigger !== "card_test" && !live
      ? h("button", { class: "btn", type: "button", id: "run-again", onclick: () => openRunDialog(run.flow_id,
        body === undefined ? "{}" : JSON.stringify(body), body === undefined ? "" : "prefilled with this run's trigger body",
        { title: "Run again", note: body === undefined ? "This run's input was not kept (the flow's “Save run data” was off): enter the body to run with." : null }) }, "Run again with this input")
      : null;
    clear(root,
      pageHeader(runTitle(run, names), `Run ${run.id}`,
        retryButton, again,
        run.flow_id ? h("a", { class: "btn", href: `/flows/${enc(run.flow_id)}` }, "Open flow") : null,
        h("a", { class: "btn", href: run.flow_id ? `/runs?flow=${enc(run.flow_id)}` : "/runs" }, "All runs")),
      h("dl", { class: "facts facts-row", id: "run-facts" },
        h("dt", {}, "Status"), h("dd", { id: "run-status", role: "status" }, badge(run.status), live ? h("span", { class: "live" }, " updating…") : null),
        h("dt", {}, "Trigger"), h("dd", {}, TRIGGERS[run.trigger] || run.trigger),
        run.flow_version ? [h("dt", {}, "Flow version"), h("dd", { id: "run-flow-version" }, `Version ${run.flow_version}`)] : null,
        h("dt", {}, "Started"), h("dd", {}, formatTime(run.started_at)),
        h("dt", {}, "Duration"), h("dd", {}, formatDuration(runDuration(run)))),
      h("p", { class: "form-error", id: "retry-error", role: "alert" }),
      run.retry_of ? h("p", { class: "muted" }, "Retries ", h("a", { href: `/runs/${enc(run.retry_of)}` }, `run ${run.retry_of}`), " from its failed card.") : null,
      run.events.length ? h("ul", { class: "run-events", id: "run-events" }, run.events.map((event) =>
        h("li", { "data-event": event.type }, h("span", { class: "muted" }, formatTime(event.at)), " ", event.message))) : null,
      run.error ? h("div", { class: "banner banner-error" }, run.error.message || JSON.stringify(run.error)) : null,
      run.trigger_data ? h("details", { class: "trigger-data", "data-key": "trigger" }, h("summary", {}, "Trigger data"), jsonView(run.trigger_data)) : null,
      h("h2", { class: "section-title" }, "Cards"),
      run.cards.length || notReached(run, flow).length
        ? h("div", { class: "run-cards" }, run.cards.map(cardRow), notReached(run, flow).map(notReachedRow))
        : h("p", { class: "muted" }, live ? "Waiting for the first card…" : "No card ran."),
      !run.cards.some((c) => c.inputs !== null || c.outputs !== null) && run.cards.length
        ? h("p", { class: "muted" }, "Inputs and outputs are kept only for flows with “Save run data” on (secrets are redacted).") : null);
  }
  window.addEventListener("pagehide", () => clearTimeout(timer));
  await load();
}
