// Connections page and the New Connection dialog (also opened from the flow builder).
import { ApiError, csrfToken, del, enc, get, patch, post } from "./api.js";
import {
  badge, clear, confirmDialog, copyButton, emptyState, fieldError, formatTime, h, modal,
  nextId, pageHeader, requiredMessage, toast,
} from "./dom.js";

let authTypesCache = null;
export async function authTypes() {
  if (!authTypesCache) authTypesCache = await get("/auth-types");
  return authTypesCache;
}

// A link the browser follows; the CSRF token in it proves the click came from this app.
export function authorizeUrl(connection) {
  return `/api/v1/connections/${enc(connection.id)}/authorize?csrf=${enc(csrfToken)}`;
}

function authorizeLink(connection) {
  const again = connection.status === "ready";
  return h("a", { class: again ? "btn btn-small" : "btn btn-small btn-primary", href: authorizeUrl(connection), "data-action": "authorize", "aria-label": `${again ? "Re-authorize" : "Authorize"} ${connection.name}` },
    again ? "Re-authorize" : "Authorize");
}

function redirectUriBlock(uri) {
  return h("div", { class: "redirect-uri" },
    h("span", { class: "muted" }, "Redirect URI (register it with the provider): "),
    h("code", { class: "redirect-uri-value" }, uri), " ", copyButton(() => uri, "Copy"));
}

const reqMark = () => h("span", { class: "req", "aria-hidden": "true" }, " *");

// A secret already stored need not be typed again (blank keeps it): only a missing one is required.
function stored(field, connection, typeName) {
  const current = connection && connection.auth_type === typeName ? connection.config[field.name] : undefined;
  return Boolean(field.secret && current && typeof current === "object" && current.set);
}

function mustFill(field, connection, typeName) {
  return field.kind === "text" && field.required && !stored(field, connection, typeName);
}

// prefill: a new connection's values to start from (cURL import), secrets included.
function configField(field, connection, typeName, prefill = null) {
  const id = nextId("cfg");
  const current = connection && connection.auth_type === typeName ? connection.config[field.name] : prefill?.[field.name];
  const path = `config.${field.name}`;
  const required = mustFill(field, connection, typeName);
  let control;
  if (field.kind === "boolean") {
    const checked = current !== undefined ? Boolean(current) : Boolean(field.default);
    control = h("input", { type: "checkbox", id, name: field.name, checked });
    return h("div", { class: "field field-check", "data-field": path },
      control, h("label", { for: id }, field.title),
      field.description ? h("p", { class: "hint" }, field.description) : null);
  }
  if (field.kind === "choice") {
    const value = current ?? field.default;
    control = h("select", { id, name: field.name },
      field.options.map((option) => h("option", { value: option, selected: option === value }, option)));
  } else if (field.secret) {
    control = h("input", {
      type: "password", id, name: field.name, autocomplete: "new-password", "data-secret": "true",
      value: !connection && prefill ? prefill[field.name] : undefined,
      required, "aria-required": required ? "true" : null,
      placeholder: stored(field, connection, typeName) ? "Saved — leave blank to keep it" : "",
    });
  } else {
    control = h("input", { type: field.name.endsWith("_url") ? "url" : "text", id, name: field.name, value: current ?? "", required, "aria-required": required ? "true" : null, autocomplete: "off", spellcheck: "false" });
  }
  // An optional secret left empty is sent empty: say so, as it is not always a slip.
  const emptyNote = field.secret && !required && !stored(field, connection, typeName)
    ? (typeName === "basic" && field.name === "password"
      ? " Left empty, an empty password is sent: right for APIs that take an API key as the username (e.g. Stripe); otherwise enter it."
      : " Optional: left empty, none is sent.")
    : "";
  const hint = field.secret ? `Stored encrypted; never shown again.${emptyNote}` : field.description;
  return h("div", { class: "field", "data-field": path },
    h("label", { for: id }, field.title, required ? reqMark() : null),
    control, hint ? h("p", { class: "hint" }, hint) : null);
}

// Allowed hosts are typed as one line: entries separated by commas, spaces or new lines.
function splitHosts(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

// "host" or "host:port" of an http(s) URL, or null while it is not one (yet).
function urlHost(text) {
  try {
    const url = new URL(String(text).trim());
    return (url.protocol === "https:" || url.protocol === "http:") && url.hostname ? url.host.toLowerCase() : null;
  } catch {
    return null;
  }
}

// For OAuth and Client Credentials: the hosts of the URLs the connection itself calls.
function suggestedHosts(type, valueOf) {
  const hosts = [];
  for (const field of type.fields) {
    if (!field.name.endsWith("_url")) continue;
    const host = urlHost(valueOf(field.name) ?? "");
    if (host && !hosts.includes(host)) hosts.push(host);
  }
  return hosts;
}

const hasSecrets = (type) => type.fields.some((field) => field.secret);
const hasUrls = (type) => type.fields.some((field) => field.name.endsWith("_url"));

// The "Allowed hosts" field: where the connection's credentials may be sent. Prefilled from
// the token / authorize URL until the user types in it; empty shows a warning.
function allowedHostsField(connection, initial = null) {
  const id = nextId("hosts");
  const editing = Boolean(connection);
  const original = connection?.allowed_hosts ?? initial ?? [];
  const input = h("input", {
    type: "text", id, name: "allowed_hosts", value: original.join(", "), autocomplete: "off",
    spellcheck: "false", placeholder: "api.example.com, *.example.com", "aria-describedby": `${id}-hint ${id}-warn`,
  });
  const hint = h("p", { class: "hint", id: `${id}-hint` });
  const warning = h("p", { class: "field-warning", id: `${id}-warn`, "data-warning": "any-host" },
    "Empty: any host can receive these credentials.");
  const element = h("div", { class: "field", "data-field": "allowed_hosts" },
    h("label", { for: id }, "Allowed hosts"), input, hint, warning);
  let type = null;
  // Creating: follow the suggestion until the user types here. Editing: only if the saved list
  // is what the suggestion was for the saved URLs (decided on the first update).
  let auto = editing ? null : !initial?.length;
  const showWarning = () => { warning.hidden = !type || !hasSecrets(type) || splitHosts(input.value).length > 0; };
  input.addEventListener("input", () => { auto = false; showWarning(); });
  return {
    element,
    // Called when the auth type changes or one of its fields is edited.
    update(newType, valueOf) {
      type = newType;
      if (auto === null) {
        const saved = suggestedHosts(type, (name) => connection.config[name]);
        auto = saved.length > 0 && saved.join(",") === original.join(",");
      }
      element.hidden = !hasSecrets(type);
      if (auto && hasUrls(type)) input.value = suggestedHosts(type, valueOf).join(", ");
      else if (auto && !editing) input.value = "";
      clear(hint,
        hasUrls(type)
          ? "Suggested from the URLs above; add the hosts of the API the cards call if they differ. "
          : "The hosts of the service these credentials are for, e.g. api.example.com or *.example.com (any name under it), each with an optional :port; separate several with commas. ",
        "A card calling any other host fails before anything is sent.",
        editing ? " Allowing a host the list did not allow needs the secrets entered again." : "");
      showWarning();
    },
    // The list to send, or undefined when this type has nothing to protect.
    value() {
      return type && hasSecrets(type) ? splitHosts(input.value) : undefined;
    },
  };
}

const TEST_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

// The optional "Test request": what the Test button sends with the connection's auth.
function testRequestField(connection) {
  const methodId = nextId("test-method");
  const urlId = nextId("test-url");
  const current = connection?.test_request;
  const method = h("select", { id: methodId, name: "test_method", "aria-label": "Test request method" },
    TEST_METHODS.map((m) => h("option", { value: m, selected: (current?.method ?? "GET") === m }, m)));
  const url = h("input", { type: "url", id: urlId, name: "test_url", value: current?.url ?? "", autocomplete: "off", spellcheck: "false", placeholder: "An absolute URL, e.g. the API’s current-user endpoint" });
  const element = h("div", { class: "field", "data-field": "test_request" },
    h("label", { for: urlId }, "Test request"),
    h("div", { class: "test-request-row" },
      h("span", { "data-field": "test_request.method" }, method),
      h("span", { "data-field": "test_request.url", class: "grow" }, url)),
    h("p", { class: "hint" }, "Optional: a URL of the service that needs these credentials (e.g. its current-user endpoint). The Test button sends it with them; it must be on an allowed host."));
  return {
    element,
    // The value to send: undefined (nothing to say), null (remove it) or {method, url}.
    value(editing) {
      const typed = url.value.trim();
      if (!typed) return editing && current ? null : undefined;
      return { method: method.value, url: typed };
    },
  };
}

function readConfig(form, type, editing) {
  const config = {};
  for (const field of type.fields) {
    const input = form.elements.namedItem(field.name);
    if (!input) continue;
    if (field.kind === "boolean") config[field.name] = input.checked;
    else if (field.secret) {
      if (input.value !== "" || !editing) config[field.name] = input.value;
    } else if (input.value.trim() !== "" || editing) config[field.name] = input.value.trim() === "" && !field.required ? null : input.value.trim();
  }
  return config;
}

// Opens the dialog; resolves with the saved connection, or null if cancelled.
// connection: the one to edit (null: a new one); name: a new one's suggested nickname;
// authType, config, allowedHosts: a new one's values to start from (cURL import's proposal).
export async function openConnectionDialog(connection = null, { name = "", authType = null, config = null, allowedHosts = null } = {}) {
  const types = await authTypes();
  const editing = Boolean(connection);
  return new Promise((resolve) => {
    let saved = null;
    const nameId = nextId("name");
    const typeId = nextId("type");
    const typeSelect = h("select", { id: typeId, name: "auth_type" },
      types.map((t) => h("option", { value: t.name, selected: connection ? connection.auth_type === t.name : t.name === (authType || "basic") }, t.title)));
    const fields = h("div", { class: "type-fields" });
    const hosts = allowedHostsField(connection, allowedHosts);
    const probe = testRequestField(connection);
    const formError = h("div", { class: "form-error", role: "alert" });
    const formId = nextId("form");
    const form = h("form", { class: "form", id: formId, novalidate: true },
      h("div", { class: "field", "data-field": "name" },
        h("label", { for: nameId }, "Nickname", reqMark()),
        h("input", { id: nameId, name: "name", required: true, "aria-required": "true", value: connection?.name ?? name, autocomplete: "off" }),
        h("p", { class: "hint" }, "Describe the service, auth type and account, e.g. “JIRA Service Management - OAuth - service_account”.")),
      h("div", { class: "field", "data-field": "auth_type" },
        h("label", { for: typeId }, "Auth type"), typeSelect),
      fields, hosts.element, probe.element, formError);
    const syncHosts = () => {
      const type = types.find((t) => t.name === typeSelect.value);
      hosts.update(type, (name) => form.elements.namedItem(name)?.value);
    };
    const renderFields = () => {
      const type = types.find((t) => t.name === typeSelect.value);
      const prefill = type.name === authType ? config : null;
      clear(fields, type.fields.length ? type.fields.map((f) => configField(f, connection, type.name, prefill))
        : h("p", { class: "muted" }, "No credentials: requests are sent as they are."));
      if (type.user_authorizes && connection?.redirect_uri) fields.append(redirectUriBlock(connection.redirect_uri));
      syncHosts();
    };
    typeSelect.addEventListener("change", renderFields);
    fields.addEventListener("input", (event) => { if (event.target.name?.endsWith("_url")) syncHosts(); });
    renderFields();
    const submit = h("button", { type: "submit", class: "btn btn-primary", form: formId }, editing ? "Save" : "Create");
    const cancel = h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Cancel");
    const dialog = modal(editing ? `Edit connection` : "New Connection", form, { actions: [cancel, submit] });
    dialog.addEventListener("close", () => resolve(saved));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      form.querySelectorAll(".field-error").forEach((e) => e.remove());
      form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
      clear(formError);
      const type = types.find((t) => t.name === typeSelect.value);
      // Every required field left empty at once, named by its label, before anything is sent.
      const sameType = editing && connection.auth_type === type.name ? connection : null;
      const empty = [{ path: "name", input: form.elements.namedItem("name") }]
        .concat(type.fields.filter((f) => mustFill(f, sameType, type.name))
          .map((f) => ({ path: `config.${f.name}`, input: form.elements.namedItem(f.name), secret: f.secret })))
        .filter(({ input, secret }) => input && (secret ? input.value === "" : input.value.trim() === ""));
      if (empty.length) {
        for (const { path, input } of empty) {
          const holder = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
          const label = holder.querySelector("label").textContent.replace(/\s*\*\s*$/, "").trim();
          input.setAttribute("aria-invalid", "true");
          holder.append(fieldError(path, requiredMessage(label)));
        }
        empty[0].input.focus();
        return;
      }
      const body = { name: form.elements.namedItem("name").value.trim(), auth_type: type.name, config: readConfig(form, type, editing && connection.auth_type === type.name) };
      const allowedHosts = hosts.value();
      if (allowedHosts !== undefined) body.allowed_hosts = allowedHosts;
      const testRequest = probe.value(editing);
      if (testRequest !== undefined) body.test_request = testRequest;
      submit.disabled = true;
      try {
        saved = editing ? await patch(`/connections/${enc(connection.id)}`, body) : await post("/connections", body);
        toast(`${editing ? "Saved" : "Created"} connection “${saved.name}”.`, "ok");
        if (type.user_authorizes && saved.status !== "ready") {
          clear(dialog.querySelector(".dialog-body"),
            h("p", {}, "Register the redirect URI below with the provider, then authorize cardflow to use the account."),
            redirectUriBlock(saved.redirect_uri));
          clear(dialog.querySelector(".dialog-actions"),
            h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Later"),
            h("a", { class: "btn btn-primary", href: authorizeUrl(saved), "data-action": "authorize" }, "Authorize now"));
          return;
        }
        dialog.close();
      } catch (error) {
        showFormError(form, formError, error);
      } finally {
        submit.disabled = false;
      }
    });
    form.elements.namedItem("name").focus();
  });
}

export function showFormError(form, formError, error) {
  const message = error instanceof ApiError ? error.message : String(error);
  const field = error instanceof ApiError ? error.field : null;
  const holder = field && (form.querySelector(`[data-field="${CSS.escape(field)}"]`)
    || form.querySelector(`[data-field="${CSS.escape(field.split(".").slice(0, 2).join("."))}"]`));
  if (holder) {
    holder.append(fieldError(field, message, holder));
    const input = holder.querySelector("input, select, textarea");
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  } else {
    clear(formError, message);
  }
}

function hostsCell(connection) {
  const hosts = connection.allowed_hosts || [];
  return h("td", { class: "hosts" },
    hosts.length ? hosts.map((host) => h("code", {}, host)) : h("span", { class: "muted" }, "Any host"),
    (connection.warnings || []).map((warning) => h("p", { class: "cell-note conn-warning" }, warning)));
}

// "10:42" today, "Dec 1, 10:42" another day: local time, the whole date and time on hover.
function shortTime(iso) {
  const date = new Date(iso);
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { month: "short", day: "numeric" })}, ${time}`;
}

// The upstream answered 401/403 to the last call with this connection (until one succeeds).
export function rejectionNote(rejected) {
  const where = rejected.flow_id
    ? [" in ", h("a", { href: rejected.run_id ? `/runs/${enc(rejected.run_id)}` : `/flows/${enc(rejected.flow_id)}` },
      `${rejected.flow_name ? `“${rejected.flow_name}”` : "a flow"}${rejected.card_id ? `, card ${rejected.card_id}` : ""}`)]
    : null;
  return h("p", { class: "cell-error conn-rejected" },
    `Credentials rejected (HTTP ${rejected.status_code}) at `,
    h("time", { datetime: rejected.at, title: formatTime(rejected.at) }, shortTime(rejected.at)), where);
}

function statusCell(connection) {
  const rejected = connection.rejected;
  return h("td", {}, badge(rejected && connection.status === "ready" ? "rejected" : connection.status),
    connection.status === "error" && connection.last_error ? h("p", { class: "cell-error" }, connection.last_error) : null,
    connection.status === "needs_authorization" && connection.last_error ? h("p", { class: "cell-note" }, connection.last_error) : null,
    rejected ? rejectionNote(rejected) : null);
}

// What the Test button found, in the server's words (status and time; never the body).
export function testResultNote(result) {
  return h("p", { class: `conn-test ${result.ok ? "conn-test-ok" : "conn-test-failed"}`, role: "status", "data-test-result": result.ok ? "ok" : "failed", "data-status": result.status_code ?? "" },
    h("strong", {}, result.ok ? "✓ Test passed: " : "✗ Test failed: "), result.message);
}

export async function connectionsPage(root) {
  const params = new URLSearchParams(window.location.search);
  const typeTitles = Object.fromEntries((await authTypes()).map((t) => [t.name, t.title]));
  const banner = h("div", {});
  const list = h("div", {});
  const create = h("button", { type: "button", class: "btn btn-primary", "data-action": "new-connection", onclick: async () => { if (await openConnectionDialog()) await load(); } }, "+ New Connection");
  clear(root, pageHeader("Connections", "Stored credentials that cards use to call services. Secrets are encrypted and never shown again.", create), banner, list);

  const authorized = params.get("authorized");
  if (authorized) {
    try {
      const conn = await get(`/connections/${enc(authorized)}`);
      clear(banner, h("div", { class: conn.status === "ready" ? "banner banner-ok" : "banner banner-error", role: "status", id: "authorize-result" },
        conn.status === "ready" ? `Authorized “${conn.name}”: the connection is ready.` : `“${conn.name}” is not ready: ${conn.last_error || conn.status}.`));
    } catch { /* the connection may have been deleted since */ }
    history.replaceState(null, "", "/connections");
  }

  // The flows using a connection, each a link to it in the builder.
  function flowLinks(conn) {
    return conn.used_by.map((use, index) => [index ? ", " : null, h("a", { href: `/flows/${enc(use.id)}` }, use.name)]).flat();
  }
  function usedByCell(conn) {
    return h("td", { class: "used-by" }, conn.used_by.length ? flowLinks(conn) : h("span", { class: "muted" }, "no flow"));
  }
  // Deleting a connection in use is refused by the server; say so before anyone confirms.
  function inUseDialog(conn) {
    const close = h("button", { type: "button", class: "btn btn-primary", onclick: () => dialog.close() }, "OK");
    const dialog = modal(`“${conn.name}” is in use`,
      h("p", { id: "in-use-message" }, `It cannot be deleted while ${conn.used_by.length === 1 ? "this flow uses" : "these flows use"} it: `, ...flowLinks(conn), ". Change their cards to another connection, or delete them, first."),
      { actions: [close] });
    close.focus();
  }

  // The last Test result of each connection (by id), shown in its row until the page is left.
  const tested = new Map();
  async function testConnection(conn, button) {
    button.disabled = true;
    button.textContent = "Testing…";
    try {
      tested.set(conn.id, await post(`/connections/${enc(conn.id)}/test`, {}));
    } catch (error) {
      tested.set(conn.id, { ok: false, status_code: null, elapsed_ms: null, message: error.message });
    }
    await load();  // a 401/403 (or a success after one) changes the connection's status
    list.querySelector(`tr[data-connection="${CSS.escape(conn.name)}"] [data-action="test-connection"]`)?.focus();
  }

  async function load() {
    const connections = await get("/connections");
    if (!connections.length) {
      clear(list, emptyState("No connections yet",
        "A connection holds the credentials for one service and account (Basic, Digest, a custom header, a bearer token, an API key in the query, OAuth 2.0 or client credentials). Create one, then pick it in an API Connector card.",
        h("button", { type: "button", class: "btn btn-primary", onclick: () => create.click() }, "+ New Connection")));
      return;
    }
    clear(list, h("table", { class: "table", id: "connections-table" },
      h("thead", {}, h("tr", {}, ["Name", "Auth type", "Allowed hosts", "Status", "Used by", "Updated", h("span", { class: "sr-only" }, "Actions")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, connections.map((conn) => h("tr", { "data-connection": conn.name },
        h("td", {}, h("strong", { class: "conn-name" }, conn.name), conn.redirect_uri ? redirectUriBlock(conn.redirect_uri) : null,
          tested.has(conn.id) ? testResultNote(tested.get(conn.id)) : null),
        h("td", { class: "nowrap" }, typeTitles[conn.auth_type] || conn.auth_type),
        hostsCell(conn),
        statusCell(conn),
        usedByCell(conn),
        h("td", { class: "nowrap muted" }, formatTime(conn.updated_at)),
        h("td", { class: "row-actions" },
          conn.redirect_uri ? authorizeLink(conn) : null,
          h("button", {
            type: "button", class: "btn btn-small", "data-action": "test-connection", "aria-label": `Test ${conn.name}`,
            title: conn.test_request ? `${conn.test_request.method} ${conn.test_request.url}` : "Set a test request (Edit) first",
            onclick: (event) => testConnection(conn, event.currentTarget),
          }, "Test"),
          h("button", { type: "button", class: "btn btn-small", "aria-label": `Edit ${conn.name}`, onclick: async () => { if (await openConnectionDialog(conn)) await load(); } }, "Edit"),
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Delete ${conn.name}`, onclick: async () => {
            if (conn.used_by.length) { inUseDialog(conn); return; }
            if (!await confirmDialog(`Delete “${conn.name}”?`, "Its stored secrets and tokens are deleted.")) return;
            try { await del(`/connections/${enc(conn.id)}`); toast(`Deleted “${conn.name}”.`, "ok"); await load(); }
            catch (error) { toast(error.message, "error"); }
          } }, "Delete")))))));
  }
  await load();
}
