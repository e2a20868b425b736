// Connections page and the New Connection dialog (also opened from the flow builder).
import { ApiError, csrfToken, del, enc, get, patch, post } from "./api.js";
import {
  badge, clear, confirmDialog, copyButton, emptyState, fieldError, formatTime, h, modal,
  nextId, pageHeader, requiredMessage, toast,
} from "./dom.js";
import { may } from "./role.js";

let authTypesCache = null;
export async function authTypes() {
  if (!authTypesCache) authTypesCache = await get("/auth-types");
  return authTypesCache;
}

let presetsCache = null;
async function connectionPresets() {
  if (!presetsCache) presetsCache = await get("/connection-presets");
  return presetsCache;
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

// private_key_jwt: the public JWK to register with the provider (the private key is never shown).
function publicJwkBlock(jwk) {
  const text = JSON.stringify(jwk);
  return h("div", { class: "public-jwk", "data-public-jwk": "true" },
    h("span", { class: "muted" }, "Public JWK (register it with the provider for private_key_jwt): "),
    h("code", { class: "public-jwk-value" }, text), " ", copyButton(() => text, "Copy JWK"));
}

const reqMark = () => h("span", { class: "req", "aria-hidden": "true" }, " *");

// A rule on a choice field ({field, values}: applies_when, required_when) holds for the form now.
function holds(rule, form) {
  const control = rule && form ? form.elements.namedItem(rule.field) : null;
  return !control || rule.values.includes(control.value);
}

// A field that applies only with some value of a choice field (a private key with
// private_key_jwt, a client secret with client_secret_*).
const applies = (field, form) => !field.applies_when || holds(field.applies_when, form);

// Show the fields that apply now, and mark those then required (the client certificate and
// key with tls_client_auth: their folded section is opened).
function syncApplies(form, type, connection) {
  for (const field of type.fields) {
    if (!field.applies_when && !field.required_when) continue;
    const holder = form.querySelector(`[data-field="${CSS.escape(`config.${field.name}`)}"]`);
    if (!holder) continue;
    holder.hidden = !applies(field, form);
    const required = mustFill(field, connection, type.name, form);
    const input = holder.querySelector("input:not([type=file]), textarea");
    if (input) { input.required = required; input.setAttribute("aria-required", required ? "true" : "false"); }
    const label = holder.querySelector("label");
    label.querySelector(".req")?.remove();
    if (required) label.append(reqMark());
    if (required) holder.closest("details")?.setAttribute("open", "");
  }
}

// A secret already stored need not be typed again (blank keeps it): only a missing one is required.
function stored(field, connection, typeName) {
  const current = connection && connection.auth_type === typeName ? connection.config[field.name] : undefined;
  return Boolean(field.secret && current && typeof current === "object" && current.set);
}

// Whether a field must be filled in: without the form, as the defaults have it; with it, as
// its rules say for the choices made (applies_when, then required_when).
function mustFill(field, connection, typeName, form = null) {
  if ((field.kind !== "text" && field.kind !== "pem") || stored(field, connection, typeName)) return false;
  if (!form) return field.required;
  if (!applies(field, form)) return false;
  if (field.required_when && holds(field.required_when, form)) return true;
  return field.applies_when ? field.required_if_applies : field.required;
}

// A PEM field (client certificate, key, CA bundle): a textarea, and a button reading a file into it.
function pemControl(field, id, current, storedAlready) {
  const area = h("textarea", {
    id, name: field.name, rows: 4, autocomplete: "off", spellcheck: "false", class: field.secret ? "pem masked" : "pem",
    "data-secret": field.secret ? "true" : null,
    placeholder: storedAlready ? "Saved — leave blank to keep it" : "-----BEGIN …-----",
  });
  if (!field.secret && typeof current === "string") area.value = current;
  const picker = h("input", { type: "file", accept: ".pem,.crt,.cer,.key,text/plain", hidden: true, "aria-label": `${field.title}: file` });
  picker.addEventListener("change", async () => {
    const file = picker.files?.[0];
    if (!file) return;
    if (file.size > 1024 * 1024) { toast(`${file.name} is larger than 1 MiB.`, "error"); return; }
    area.value = await file.text();
    picker.value = "";
    area.dispatchEvent(new Event("input", { bubbles: true }));
  });
  const load = h("button", { type: "button", class: "btn btn-small", "data-action": "pem-file", onclick: () => picker.click() }, "Load from file…");
  return h("div", { class: "pem-control" }, area, h("div", { class: "pem-actions" }, load, picker));
}

// What may be shown of a stored client certificate.
function certificateNote(current) {
  if (!current || typeof current !== "object" || !current.set || !current.subject) return "";
  return ` Saved: ${current.subject}, issued by ${current.issuer}, valid until ${formatTime(current.not_after)}; SHA-256 ${current.sha256}.`;
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
  if (field.kind === "pem") {
    control = pemControl(field, id, current, stored(field, connection, typeName));
  } else if (field.kind === "choice") {
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
  const emptyNote = field.group === "client_tls" ? certificateNote(current)
    : field.secret && !field.applies_when && !required && !stored(field, connection, typeName)
    ? (typeName === "basic" && field.name === "password"
      ? " Left empty, an empty password is sent: right for APIs that take an API key as the username (e.g. Stripe); otherwise enter it."
      : " Optional: left empty, none is sent.")
    : "";
  // A field with a rule (applies_when, required_when) has its description beside the secret note.
  const ruleNote = field.secret && (field.applies_when || field.required_when) && field.description ? ` ${field.description}` : "";
  const hint = field.group === "client_tls" ? `${field.description}${emptyNote}`
    : field.secret ? `Stored encrypted; never shown again.${emptyNote}${ruleNote}` : field.description;
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

// For OAuth and Client Credentials: the hosts of the URLs the connection itself calls,
// and the base URL's (where cards' relative URLs go).
function suggestedHosts(type, valueOf) {
  const hosts = [];
  for (const name of [...type.fields.map((field) => field.name), "base_url"]) {
    if (!name.endsWith("_url")) continue;
    const host = urlHost(valueOf(name) ?? "");
    if (host && !hosts.includes(host)) hosts.push(host);
  }
  return hosts;
}

// The type's own secrets; the mutual-TLS fields every type has count once one is filled in.
const hasSecrets = (type, tlsSet = () => false) =>
  type.fields.some((field) => field.secret && field.group !== "client_tls") || tlsSet();
const hasUrls = (type, valueOf = () => "") => type.fields.some((field) => field.name.endsWith("_url")) || Boolean(urlHost(valueOf("base_url") ?? ""));

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
  let tlsSet = () => false;
  // Creating: follow the suggestion until the user types here. Editing: only if the saved list
  // is what the suggestion was for the saved URLs (decided on the first update).
  let auto = editing ? null : !initial?.length;
  const showWarning = () => { warning.hidden = !type || !hasSecrets(type, tlsSet) || splitHosts(input.value).length > 0; };
  input.addEventListener("input", () => { auto = false; showWarning(); });
  return {
    element,
    // Called when the auth type changes or one of its fields is edited.
    // tlsGiven: whether a client certificate is entered or stored.
    update(newType, valueOf, tlsGiven = () => false) {
      type = newType;
      tlsSet = tlsGiven;
      if (auto === null) {
        const saved = suggestedHosts(type, (name) => (name === "base_url" ? connection.base_url : connection.config[name]));
        auto = saved.length > 0 && saved.join(",") === original.join(",");
      }
      element.hidden = !hasSecrets(type, tlsSet);
      if (auto && hasUrls(type, valueOf)) input.value = suggestedHosts(type, valueOf).join(", ");
      else if (auto && !editing) input.value = "";
      clear(hint,
        hasUrls(type, valueOf)
          ? "Suggested from the URLs above; add the hosts of the API the cards call if they differ. "
          : "The hosts of the service these credentials are for, e.g. api.example.com or *.example.com (any name under it), each with an optional :port; separate several with commas. ",
        "A card calling any other host fails before anything is sent.",
        editing ? " Allowing a host the list did not allow needs the secrets entered again." : "");
      showWarning();
    },
    // A preset's hosts: kept as given, as if typed here.
    set(list) {
      auto = false;
      input.value = list.join(", ");
      showWarning();
    },
    // The list to send, or undefined when this type has nothing to protect.
    value() {
      return type && hasSecrets(type, tlsSet) ? splitHosts(input.value) : undefined;
    },
  };
}

// Where cards' relative URLs go: "/user" in a card means base URL + "/user".
function baseUrlField(connection) {
  const id = nextId("base");
  return h("div", { class: "field", "data-field": "base_url" },
    h("label", { for: id }, "Base URL"),
    h("input", { type: "url", id, name: "base_url", value: connection?.base_url ?? "", autocomplete: "off", spellcheck: "false" }),
    h("p", { class: "hint" }, "Optional: the API's root URL, with its scheme and any path (…/v1). Cards using this connection may then give a path (/user) instead of a whole URL. Its host must be among the allowed hosts."));
}

// "Start from a preset": search the catalogue, fill in its placeholders, and the form is
// filled from it (onFilled(filled, preset)); the user adds the client ID and the secrets.
function presetPicker(onFilled) {
  const searchId = nextId("preset-q");
  const search = h("input", { type: "search", id: searchId, autocomplete: "off", placeholder: "GitHub, Okta, Stripe…", "aria-controls": `${searchId}-list` });
  const list = h("ul", { class: "preset-list", id: `${searchId}-list`, role: "list" });
  const chosen = h("div", { class: "preset-chosen" });
  const element = h("fieldset", { class: "preset-picker", "data-field": "preset" },
    h("legend", {}, "Start from a preset"),
    h("label", { for: searchId, class: "sr-only" }, "Search presets"), search, list, chosen);
  let all = [];
  const show = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const found = all.filter((p) => words.every((w) => `${p.id} ${p.title} ${p.description}`.toLowerCase().includes(w)));
    clear(list, words.length
      ? found.slice(0, 8).map((p) => h("li", {}, h("button", { type: "button", class: "btn btn-small preset-option", "data-preset": p.id, onclick: () => choose(p) }, p.title)))
      : []);
    if (words.length && !found.length) list.append(h("li", { class: "muted" }, "No preset matches."));
  };
  function choose(preset) {
    clear(list);
    search.value = preset.title;
    const inputs = preset.placeholders.map((p) => {
      const id = nextId("param");
      const input = h("input", { id, name: `preset_params.${p.name}`, value: p.default ?? "", placeholder: p.example, autocomplete: "off", spellcheck: "false", "data-param": p.name });
      return { p, input, holder: h("div", { class: "field", "data-field": `preset_params.${p.name}` },
        h("label", { for: id }, p.label, p.default ? null : reqMark()), input,
        h("p", { class: "hint" }, p.description || `e.g. ${p.example}`)) };
    });
    const error = h("div", { class: "form-error", role: "alert" });
    const apply = h("button", { type: "button", class: "btn btn-primary btn-small", "data-action": "apply-preset" }, "Fill the form");
    apply.addEventListener("click", async () => {
      chosen.querySelectorAll(".field-error").forEach((e) => e.remove());
      clear(error);
      const params = Object.fromEntries(inputs.map(({ p, input }) => [p.name, input.value.trim()]).filter(([, v]) => v));
      try {
        const filled = await post(`/connection-presets/${enc(preset.id)}/fill`, { params });
        onFilled(filled, preset);
        clear(error, h("span", { class: "preset-applied", role: "status" }, `Filled from “${preset.title}”: add the client ID and secrets below.`));
      } catch (failure) {
        const at = failure instanceof ApiError && inputs.find(({ p }) => failure.field === `preset_params.${p.name}`);
        if (at) {
          at.input.setAttribute("aria-invalid", "true");
          at.holder.append(fieldError(failure.field, failure.message, at.holder));
          at.input.focus();
        } else clear(error, failure instanceof ApiError ? failure.message : String(failure));
      }
    });
    clear(chosen,
      h("p", { class: "preset-summary" }, h("strong", {}, preset.title), " — ", preset.description, " ",
        h("a", { href: preset.docs_url, target: "_blank", rel: "noopener noreferrer", class: "preset-docs" }, "Developer docs ↗")),
      inputs.map(({ holder }) => holder), apply, error);
    (inputs[0]?.input ?? apply).focus();
  }
  search.addEventListener("input", show);
  // Enter here picks or fills; it never submits the connection form.
  element.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    if (event.target === search) list.querySelector("button")?.click();
    else if (event.target.dataset.param !== undefined) chosen.querySelector('[data-action="apply-preset"]')?.click();
  });
  connectionPresets().then((presets) => { all = presets; show(); }).catch(() => { element.hidden = true; });
  return element;
}

const TEST_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

// The optional "Test request": what the Test button sends with the connection's auth.
function testRequestField(connection) {
  const methodId = nextId("test-method");
  const urlId = nextId("test-url");
  const current = connection?.test_request;
  const method = h("select", { id: methodId, name: "test_method", "aria-label": "Test request method" },
    TEST_METHODS.map((m) => h("option", { value: m, selected: (current?.method ?? "GET") === m }, m)));
  const url = h("input", { type: "text", inputmode: "url", id: urlId, name: "test_url", value: current?.url ?? "", autocomplete: "off", spellcheck: "false", placeholder: "A path under the base URL (/me) or an absolute URL" });
  const element = h("div", { class: "field", "data-field": "test_request" },
    h("label", { for: urlId }, "Test request"),
    h("div", { class: "test-request-row" },
      h("span", { "data-field": "test_request.method" }, method),
      h("span", { "data-field": "test_request.url", class: "grow" }, url)),
    h("p", { class: "hint" }, "Optional: a URL of the service that needs these credentials (e.g. its current-user endpoint), whole or as a path under the base URL. The Test button sends it with them; it must be on an allowed host."));
  return {
    element,
    // The value to send: undefined (nothing to say), null (remove it) or {method, url}.
    value(editing) {
      const typed = url.value.trim();
      if (!typed) return editing && current ? null : undefined;
      return { method: method.value, url: typed };
    },
    // A preset's test request ({method, path}), as if typed here.
    set(request) {
      method.value = request.method;
      url.value = request.path;
    },
  };
}

function readConfig(form, type, editing) {
  const config = {};
  for (const field of type.fields) {
    const input = form.elements.namedItem(field.name);
    if (!input || !applies(field, form)) continue; // hidden: it does not apply, it is not sent
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
  // A new connection's values to start from: cURL import's proposal, or a preset's.
  let prefillType = authType;
  let prefillConfig = config;
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
      fields, baseUrlField(connection), hosts.element, probe.element, formError);
    const tlsGiven = () => {
      const type = types.find((t) => t.name === typeSelect.value);
      const field = type.fields.find((f) => f.name === "client_certificate");
      return Boolean(field && (form.elements.namedItem(field.name)?.value || stored(field, connection, type.name)));
    };
    const picker = editing ? null : presetPicker((filled, preset) => {
      prefillType = filled.auth_type;
      prefillConfig = filled.config;
      typeSelect.value = filled.auth_type;
      form.elements.namedItem("base_url").value = filled.base_url ?? "";
      if (filled.test_request && filled.base_url) probe.set(filled.test_request);
      renderFields();
      hosts.set(filled.allowed_hosts);
      const nameInput = form.elements.namedItem("name");
      if (!nameInput.value.trim()) nameInput.value = `${preset.title} - ${typeSelect.selectedOptions[0].textContent}`;
      if (preset.secret_help) fields.prepend(h("p", { class: "hint preset-secret-help" }, preset.secret_help));
    });
    if (picker) form.prepend(picker);
    const syncHosts = () => {
      const type = types.find((t) => t.name === typeSelect.value);
      hosts.update(type, (name) => form.elements.namedItem(name)?.value, tlsGiven);
    };
    const renderFields = () => {
      const type = types.find((t) => t.name === typeSelect.value);
      const prefill = type.name === prefillType ? prefillConfig : null;
      const own = type.fields.filter((f) => f.group !== "client_tls");
      const tls = type.fields.filter((f) => f.group === "client_tls");
      // Mutual TLS, which every type may add, folded away unless the connection has it.
      const tlsOpen = tls.some((f) => stored(f, connection, type.name) || (!f.secret && connection?.auth_type === type.name && connection.config[f.name]));
      clear(fields, own.length ? own.map((f) => configField(f, connection, type.name, prefill))
        : h("p", { class: "muted" }, "No credentials: requests are sent as they are (add a client certificate below if the API wants one)."),
      tls.length ? h("details", { class: "tls-fields", open: tlsOpen },
        h("summary", {}, "Client certificate (mutual TLS)"),
        h("p", { class: "hint" }, "For APIs that want a client certificate: it is presented to the allowed hosts (and the token endpoint), never on a redirect elsewhere."),
        tls.map((f) => configField(f, connection, type.name, prefill))) : null);
      if (type.user_authorizes && connection?.redirect_uri) fields.append(redirectUriBlock(connection.redirect_uri));
      if (connection?.auth_type === type.name && connection.config.public_jwk) fields.append(publicJwkBlock(connection.config.public_jwk));
      syncApplies(form, type, connection?.auth_type === type.name ? connection : null);
      syncHosts();
    };
    typeSelect.addEventListener("change", renderFields);
    // A choice (token_auth_method) shows, hides and requires the fields whose rules name it.
    fields.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT") {
        const type = types.find((t) => t.name === typeSelect.value);
        syncApplies(form, type, connection?.auth_type === type.name ? connection : null);
      }
    });
    fields.addEventListener("input", (event) => { if (event.target.name?.endsWith("_url") || event.target.name === "client_certificate") syncHosts(); });
    form.elements.namedItem("base_url").addEventListener("input", syncHosts);
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
        .concat(type.fields.filter((f) => mustFill(f, sameType, type.name, form))
          .map((f) => ({ path: `config.${f.name}`, input: form.elements.namedItem(f.name), secret: f.secret })))
        .filter(({ input, secret }) => input && (secret ? input.value === "" : input.value.trim() === ""));
      if (empty.length) {
        for (const { path, input } of empty) {
          const holder = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
          holder.closest("details")?.setAttribute("open", "");
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
      const baseUrl = form.elements.namedItem("base_url").value.trim();
      if (baseUrl || (editing && connection.base_url)) body.base_url = baseUrl;
      const testRequest = probe.value(editing);
      if (testRequest !== undefined) body.test_request = testRequest;
      submit.disabled = true;
      try {
        saved = editing ? await patch(`/connections/${enc(connection.id)}`, body) : await post("/connections", body);
        toast(`${editing ? "Saved" : "Created"} connection “${saved.name}”.`, "ok");
        if (type.user_authorizes && saved.status !== "ready") {
          clear(dialog.querySelector(".dialog-body"),
            h("p", {}, "Register the redirect URI below with the provider, then authorize cardflow to use the account."),
            redirectUriBlock(saved.redirect_uri),
            saved.config.public_jwk ? publicJwkBlock(saved.config.public_jwk) : null);
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
    holder.closest("details")?.setAttribute("open", "");
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
    connection.base_url ? h("p", { class: "cell-note conn-base-url" }, "Base URL: ", h("code", {}, connection.base_url)) : null,
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
  const manages = may("admin"); // builders and viewers use connections, never change them
  const create = manages && h("button", { type: "button", class: "btn btn-primary", "data-action": "new-connection", onclick: async () => { if (await openConnectionDialog()) await load(); } }, "+ New Connection");
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
        manages ? "A connection holds the credentials for one service and account (Basic, Digest, a custom header, a bearer token, an API key in the query, OAuth 2.0 or client credentials). Create one, then pick it in an API Connector card."
          : "None is shared with you yet: an admin creates connections and shares them.",
        manages && h("button", { type: "button", class: "btn btn-primary", onclick: () => create.click() }, "+ New Connection")));
      return;
    }
    clear(list, h("table", { class: "table", id: "connections-table" },
      h("thead", {}, h("tr", {}, ["Name", "Auth type", "Allowed hosts", "Status", "Used by", "Updated", h("span", { class: "sr-only" }, "Actions")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, connections.map((conn) => h("tr", { "data-connection": conn.name },
        h("td", {}, h("strong", { class: "conn-name" }, conn.name), conn.redirect_uri ? redirectUriBlock(conn.redirect_uri) : null,
          conn.config.public_jwk ? publicJwkBlock(conn.config.public_jwk) : null,
          tested.has(conn.id) ? testResultNote(tested.get(conn.id)) : null),
        h("td", { class: "nowrap" }, typeTitles[conn.auth_type] || conn.auth_type),
        hostsCell(conn),
        statusCell(conn),
        usedByCell(conn),
        h("td", { class: "nowrap muted" }, formatTime(conn.updated_at)),
        h("td", { class: "row-actions" },
          manages && conn.redirect_uri ? authorizeLink(conn) : null,
          manages && h("button", {
            type: "button", class: "btn btn-small", "data-action": "test-connection", "aria-label": `Test ${conn.name}`,
            title: conn.test_request ? `${conn.test_request.method} ${conn.test_request.url}` : "Set a test request (Edit) first",
            onclick: (event) => testConnection(conn, event.currentTarget),
          }, "Test"),
          manages && h("button", { type: "button", class: "btn btn-small", "aria-label": `Edit ${conn.name}`, onclick: async () => { if (await openConnectionDialog(conn)) await load(); } }, "Edit"),
          manages && h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Delete ${conn.name}`, onclick: async () => {
            if (conn.used_by.length) { inUseDialog(conn); return; }
            if (!await confirmDialog(`Delete “${conn.name}”?`, "Its stored secrets and tokens are deleted.")) return;
            try {
              const revocation = (await del(`/connections/${enc(conn.id)}`))?.revocation;
              if (revocation && !revocation.revoked) toast(`Deleted “${conn.name}”, but its tokens could not be revoked at the provider: ${revocation.error}`, "error");
              else toast(`Deleted “${conn.name}”${revocation ? "; its tokens were revoked at the provider" : ""}.`, "ok");
              await load();
            }
            catch (error) { toast(error.message, "error"); }
          } }, "Delete")))))));
  }
  await load();
}
