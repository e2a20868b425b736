// The audit log: who changed what, when and from where; filters kept in the address like
// the Run history's, older entries a page at a time, and the same list as JSON lines.
import { get } from "./api.js";
import { clear, emptyState, formatTime, h, pageHeader, toast } from "./dom.js";

const PAGE = 50;
// value -> label: a group ("connection") matches each of its actions
const ACTIONS = {
  connection: "Connections (all)",
  "connection.created": "Connection created",
  "connection.updated": "Connection changed",
  "connection.deleted": "Connection deleted",
  "connection.tokens_revoked": "Connection tokens revoked",
  "connection.revocation_failed": "Connection revocation failed",
  "connection.authorized": "Connection authorized",
  "connection.authorization_failed": "Authorization failed",
  flow: "Flows (all)",
  "flow.created": "Flow created",
  "flow.updated": "Flow saved",
  "flow.enabled": "Flow enabled",
  "flow.disabled": "Flow disabled",
  "flow.deleted": "Flow deleted",
  "flow.imported": "Flow imported",
  "flow.token_regenerated": "Flow client token regenerated",
  api_token: "API tokens (all)",
  "api_token.created": "API token issued",
  "api_token.revoked": "API token revoked",
  "api_token.auth_failed": "Bad API token",
  "keys.rotated": "Keys rotated",
  user: "Users (all)",
  "user.invited": "User invited",
  "user.joined": "User joined",
  "user.role_changed": "User's role changed",
  "user.removed": "User removed",
  "invite.cancelled": "Invitation cancelled",
  web: "Web logins (all)",
  "web.login": "Logged in",
  "web.login_failed": "Login failed",
  "web.logout": "Logged out",
};
const KINDS = { api_token: "API token", web_session: "Web session", cli: "CLI", library: "Library", anonymous: "Anonymous" };

function who(actor) {
  const kind = KINDS[actor.kind] || actor.kind;
  const named = actor.name && actor.name !== "web session" ? actor.name : actor.id;
  const text = named ? `${kind} ${named}` : kind;
  return actor.user_name ? `${text} (${actor.user_name})` : text;  // the user behind it
}

function changeText(change) {
  if (change.changed) return `${change.field} changed`;
  const shown = (value) => (value === null || value === undefined ? "—" : JSON.stringify(value));
  return `${change.field}: ${shown(change.old)} → ${shown(change.new)}`;
}

function detailText(details) {
  return Object.entries(details || {})
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
}

function entryRow(entry) {
  const target = entry.target;
  const lines = [...entry.changes.map(changeText), ...detailText(entry.details)];
  return h("tr", { "data-audit": String(entry.id), "data-action": entry.action },
    h("td", { class: "nowrap" }, formatTime(entry.at)),
    h("td", { class: "nowrap audit-action" }, ACTIONS[entry.action] || entry.action, h("div", { class: "muted small" }, entry.action)),
    h("td", { class: "audit-actor" }, who(entry.actor)),
    h("td", { class: "nowrap" }, entry.address || "—"),
    h("td", { class: "audit-target" }, target ? [target.name || target.id || target.type,
      h("div", { class: "muted small" }, target.type, target.id && target.name ? ` ${target.id}` : "")] : "—"),
    h("td", { class: "audit-changes" }, lines.length ? h("ul", { class: "plain-list" }, lines.map((line) => h("li", {}, line))) : "—"));
}

export async function auditPage(root) {
  const params = new URLSearchParams(window.location.search);
  const actionId = "audit-filter-action";
  const action = h("select", { id: actionId, "data-filter": "action" },
    h("option", { value: "" }, "Any action"),
    Object.entries(ACTIONS).map(([key, text]) => h("option", { value: key, selected: key === params.get("action") }, text)));
  const text = (id, value, placeholder) => h("input", { id, type: "search", value: value || "", placeholder, autocomplete: "off", spellcheck: "false" });
  const target = text("audit-filter-target", params.get("target"), "id or name");
  const actor = text("audit-filter-actor", params.get("actor"), "token, user, cli…");
  const since = h("input", { type: "date", id: "audit-filter-since", value: params.get("since") || "" });
  const controls = [action, target, actor, since];
  const label = (control, words) => h("label", { for: control.id, class: "inline-label" }, words);
  const exportLink = h("a", { class: "btn", id: "audit-export", href: "/api/v1/audit/export", download: "audit.jsonl" }, "Export (JSON lines)");
  const list = h("div", {});
  const more = h("div", { class: "more-runs" });
  clear(root,
    pageHeader("Audit log", "Every change, newest first: who made it, from where, and what changed (a secret only as “changed”). Entries are kept 365 days unless CARDFLOW_AUDIT_RETENTION_DAYS says otherwise.", exportLink),
    h("form", { class: "run-filters audit-filters", id: "audit-filters", onsubmit: (event) => { event.preventDefault(); remember(); load(); } },
      label(action, "Action"), action, label(target, "Target"), target, label(actor, "Actor"), actor, label(since, "Since"), since,
      h("button", { type: "submit", class: "btn" }, "Filter")),
    list, more);
  let latest = 0; // only the newest request may draw

  function query() {
    const q = new URLSearchParams();
    if (action.value) q.set("action", action.value);
    if (target.value.trim()) q.set("target", target.value.trim());
    if (actor.value.trim()) q.set("actor", actor.value.trim());
    if (since.value) q.set("since", new Date(`${since.value}T00:00:00`).toISOString());
    return q;
  }
  function remember() {
    const shown = new URLSearchParams();
    if (action.value) shown.set("action", action.value);
    if (target.value.trim()) shown.set("target", target.value.trim());
    if (actor.value.trim()) shown.set("actor", actor.value.trim());
    if (since.value) shown.set("since", since.value);
    history.replaceState(null, "", shown.toString() ? `/audit?${shown}` : "/audit");
    const q = query();
    exportLink.href = q.toString() ? `/api/v1/audit/export?${q}` : "/api/v1/audit/export";
  }
  [action, since].forEach((control) => control.addEventListener("change", () => { remember(); load(); }));

  async function page(before) {
    const q = query();
    q.set("limit", String(PAGE));
    if (before) q.set("before", String(before));
    return get(`/audit?${q}`);
  }

  function moreButton(entries, body) {
    clear(more, entries.length === PAGE ? h("button", { type: "button", class: "btn", id: "older-entries", onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      try {
        const older = await page(entries[entries.length - 1].id);
        body.append(...older.map(entryRow));
        moreButton(older, body);
      } catch (error) { button.disabled = false; toast(error.message, "error"); }
    } }, "Older entries") : null);
  }

  async function load() {
    latest += 1;
    const mine = latest;
    let entries;
    try {
      entries = await page(null);
    } catch (error) {
      if (mine === latest) clear(list, h("div", { class: "banner banner-error", role: "alert" }, error.message));
      return;
    }
    if (mine !== latest) return;
    if (!entries.length) {
      clear(more);
      const filtered = controls.some((control) => control.value.trim());
      clear(list, filtered
        ? emptyState("No entries match", "No audit log entry matches these filters.", h("a", { class: "btn", href: "/audit" }, "Show all entries"))
        : emptyState("No entries yet", "Changes to connections, flows, tokens and keys, and logins, appear here."));
      return;
    }
    const body = h("tbody", {}, entries.map(entryRow));
    clear(list, h("table", { class: "table", id: "audit-table" },
      h("thead", {}, h("tr", {}, ["When", "Action", "Who", "From", "Target", "What changed"].map((c) => h("th", { scope: "col" }, c)))),
      body));
    moreButton(entries, body);
  }
  remember();
  await load();
}
