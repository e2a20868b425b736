// Flows page: list, create, import, export, enable/disable, delete.
import { del, enc, get, patch } from "./api.js";
import { badge, clear, confirmDialog, emptyState, formatTime, h, pageHeader, toast } from "./dom.js";
import { importFile } from "./flow-import.js";
import { may } from "./role.js";

function triggerText(flow) {
  if (flow.trigger.type === "api_endpoint") return h("code", {}, `/invoke/${flow.trigger.alias}`);
  return "Manual";
}

export async function flowsPage(root) {
  const list = h("div", {});
  const fileInput = h("input", { type: "file", id: "import-file", class: "sr-only", tabindex: "-1", accept: ".yaml,.yml,.json,application/json,application/yaml" });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (file) await importFile(file, load);
  });
  const builds = may("builder"); // a viewer reads flows and changes nothing
  clear(root,
    pageHeader("Flows", "Cards run in order, started by hand or by an HTTP call to their API endpoint.",
      builds && h("label", { for: "import-file", class: "btn", tabindex: "0", role: "button",
        onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } } }, "Import file…"),
      builds && fileInput,
      builds && h("a", { class: "btn btn-primary", href: "/flows/new", "data-action": "new-flow" }, "+ New flow")),
    list);

  async function load() {
    const flows = await get("/flows");
    if (!flows.length) {
      clear(list, emptyState("No flows yet",
        builds ? "Build one card by card in the builder, or import a YAML or JSON flow file exported from cardflow." : "None has been built yet.",
        builds && h("a", { class: "btn btn-primary", href: "/flows/new" }, "+ New flow")));
      return;
    }
    clear(list, h("table", { class: "table", id: "flows-table" },
      h("thead", {}, h("tr", {}, [["Name"], ["Trigger"], ["Cards", "col-cards"], ["Status"], ["Last run"], ["Updated", "col-updated"], [h("span", { class: "sr-only" }, "Actions")]]
        .map(([c, cls]) => h("th", { scope: "col", class: cls }, c)))),
      h("tbody", {}, flows.map((flow) => h("tr", { "data-flow": flow.name },
        h("td", {}, h("a", { href: `/flows/${enc(flow.id)}`, class: "strong-link" }, flow.name),
          flow.description ? h("p", { class: "cell-note" }, flow.description) : null),
        h("td", {}, triggerText(flow)),
        h("td", { class: "col-cards" }, String(flow.cards.length)),
        h("td", {}, badge(flow.enabled ? "enabled" : "disabled")),
        h("td", { class: "last-run" }, flow.last_run
          ? h("a", { href: `/runs/${enc(flow.last_run.id)}`, "aria-label": `Last run of ${flow.name}: ${flow.last_run.status}` }, badge(flow.last_run.status), " ", h("span", { class: "muted small" }, formatTime(flow.last_run.started_at)))
          : h("span", { class: "muted" }, "never")),
        h("td", { class: "nowrap muted col-updated" }, formatTime(flow.updated_at)),
        h("td", { class: "row-actions" },
          h("a", { class: "btn btn-small", href: `/runs?flow=${enc(flow.id)}`, "aria-label": `Runs of ${flow.name}` }, "Runs"),
          h("a", { class: "btn btn-small", href: `/api/v1/flows/${enc(flow.id)}/export`, download: `${flow.name.replace(/[^\w.-]+/g, "_")}.yaml`, "aria-label": `Export ${flow.name}` }, "Export"),
          builds && h("button", { type: "button", class: "btn btn-small", "aria-label": `${flow.enabled ? "Disable" : "Enable"} ${flow.name}`, onclick: async () => {
            try { await patch(`/flows/${enc(flow.id)}`, { enabled: !flow.enabled }); await load(); }
            catch (error) { toast(error.message, "error"); }
          } }, flow.enabled ? "Disable" : "Enable"),
          builds && h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Delete ${flow.name}`, onclick: async () => {
            if (!await confirmDialog(`Delete “${flow.name}”?`, "The flow and its API endpoint go away; its run history is kept until it expires.")) return;
            try { await del(`/flows/${enc(flow.id)}`); toast(`Deleted “${flow.name}”.`, "ok"); await load(); }
            catch (error) { toast(error.message, "error"); }
          } }, "Delete")))))));
  }
  await load();
}
