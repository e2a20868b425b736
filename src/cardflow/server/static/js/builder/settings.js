// The flow's own settings: name, description, save run data, enabled.
import { h } from "../dom.js";
import { labelled } from "./fields.js";
import { markDirty } from "./state.js";

export function settingsSection(state) {
  const { doc } = state;
  const nameInput = h("input", { id: "flow-name", value: doc.name, required: true, autocomplete: "off", placeholder: "e.g. Offboard user" });
  nameInput.addEventListener("input", () => { doc.name = nameInput.value; markDirty(state); });
  const description = h("input", { id: "flow-description", value: doc.description, autocomplete: "off" });
  description.addEventListener("input", () => { doc.description = description.value; markDirty(state); });
  const saveData = h("input", { type: "checkbox", id: "flow-save-data", checked: doc.save_data });
  saveData.addEventListener("change", () => { doc.save_data = saveData.checked; markDirty(state); });
  const enabled = h("input", { type: "checkbox", id: "flow-enabled", checked: doc.enabled });
  enabled.addEventListener("change", () => { doc.enabled = enabled.checked; markDirty(state); });
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
