// A flow's version history: every save kept (number, when, who, note), two versions
// compared side by side (the server diffs their YAML export, line by line), and Restore
// (saves that version's document as the newest version; the builder then shows it).
import { enc, get, post } from "../api.js";
import { clear, confirmDialog, formatTime, h, modal } from "../dom.js";
import { may } from "../role.js";

const PAGE = 50;
const WHO = { web: "Web app", cli: "CLI", library: "Library", migration: "Before history began" };

// "token:deploy (alice)": how, then (in brackets) which user.
export function actorText(actor) {
  const user = actor.match(/^(.*) \((.*)\)$/);
  const how = user ? user[1] : actor;
  const text = how.startsWith("token:") ? `API token “${how.slice("token:".length)}”` : WHO[how] || how;
  return user ? `${user[2]} · ${text}` : text;
}

// onRestored(view): the flow as the restore saved it.
export function openHistory(state, onRestored) {
  const flowId = state.view.id;
  const rows = h("tbody", {});
  const error = h("p", { class: "form-error", id: "history-error", role: "alert" });
  const hint = h("p", { class: "hint", id: "history-hint" }, "Choose two versions to compare them side by side.");
  const diffHolder = h("div", { id: "version-diff" });
  const more = h("button", { type: "button", class: "btn btn-small", id: "history-more", onclick: () => load() }, "Show older versions");
  const moreHolder = h("div", { class: "history-more" });
  const chosen = []; // the version numbers ticked, oldest tick first (at most two)
  let newest = null;
  let oldestShown = null;

  async function load() {
    error.textContent = "";
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (oldestShown !== null) query.set("before", String(oldestShown));
    let page;
    try { page = await get(`/flows/${enc(flowId)}/versions?${query}`); } catch (problem) { error.textContent = problem.message; return; }
    if (newest === null && page.length) newest = page[0].number;
    for (const version of page) rows.append(row(version));
    if (page.length) oldestShown = page[page.length - 1].number;
    clear(moreHolder, page.length < PAGE ? null : more);
  }

  function row(version) {
    const id = `version-pick-${version.number}`;
    const tick = h("input", { type: "checkbox", id, class: "version-pick", value: String(version.number), onchange: (event) => pick(version.number, event.currentTarget.checked) });
    const restore = version.number === newest ? h("span", { class: "muted small" }, "Current")
      : !may("builder") ? null
      : h("button", { type: "button", class: "btn btn-small", "data-restore": String(version.number), onclick: (event) => restoreVersion(version.number, event.currentTarget) }, "Restore");
    return h("tr", { "data-version": String(version.number) },
      h("td", {}, tick, h("label", { for: id, class: "sr-only" }, `Compare version ${version.number}`)),
      h("td", { class: "version-number" }, String(version.number)),
      h("td", { class: "version-time" }, h("time", { datetime: version.created_at }, formatTime(version.created_at))),
      h("td", { class: "version-actor" }, actorText(version.actor)),
      h("td", { class: "version-note" }, version.note || h("span", { class: "muted" }, "—")),
      h("td", {}, restore));
  }

  function pick(number, checked) {
    const at = chosen.indexOf(number);
    if (!checked && at >= 0) chosen.splice(at, 1);
    if (checked && at < 0) {
      chosen.push(number);
      if (chosen.length > 2) {
        const dropped = chosen.shift();
        const box = rows.querySelector(`#version-pick-${dropped}`);
        if (box) box.checked = false;
      }
    }
    if (chosen.length === 2) showDiff(Math.min(...chosen), Math.max(...chosen));
    else diffHolder.replaceChildren();
  }

  async function showDiff(older, newer) {
    diffHolder.replaceChildren(h("p", { class: "loading" }, "Comparing…"));
    let found;
    try { found = await get(`/flows/${enc(flowId)}/versions/${older}/diff/${newer}`); } catch (problem) {
      diffHolder.replaceChildren(h("p", { class: "form-error", role: "alert" }, problem.message));
      return;
    }
    if (chosen.length !== 2 || Math.min(...chosen) !== older || Math.max(...chosen) !== newer) return; // picked again meanwhile
    const cell = (number, text, side) => [
      h("td", { class: "diff-number" }, number === null ? "" : String(number)),
      h("td", { class: `diff-line diff-${side}` }, text === null ? "" : text),
    ];
    clear(diffHolder,
      h("h3", { class: "section-title" }, `Version ${older} → version ${newer}`),
      found.changed ? null : h("p", { class: "muted", id: "diff-same" }, "The two versions are the same."),
      h("div", { class: "diff-scroll" }, h("table", { class: "diff", id: "diff-table" },
        h("colgroup", {}, h("col", { class: "diff-number-col" }), h("col", {}), h("col", { class: "diff-number-col" }), h("col", {})),
        h("thead", {}, h("tr", {}, h("th", { colspan: "2" }, `Version ${older}`), h("th", { colspan: "2" }, `Version ${newer}`))),
        h("tbody", {}, found.rows.map((line) => h("tr", { class: `diff-row diff-${line.kind}`, "data-kind": line.kind },
          cell(line.left_number, line.left, "left"), cell(line.right_number, line.right, "right")))))));
  }

  async function restoreVersion(number, button) {
    const yes = await confirmDialog(`Restore version ${number}?`,
      `The flow becomes what version ${number} saved, kept as a new version (the history keeps every version). Unsaved changes in the builder are lost.`,
      { confirmLabel: "Restore", danger: false });
    if (!yes) return;
    button.disabled = true;
    try {
      const view = await post(`/flows/${enc(flowId)}/versions/${number}/restore`, {});
      dialog.close();
      await onRestored(view, number);
    } catch (problem) {
      button.disabled = false;
      error.textContent = problem.message;
    }
  }

  const dialog = modal("Version history", h("div", { id: "version-history" },
    hint, error,
    h("table", { class: "table versions-table", id: "versions-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Compare"), h("th", {}, "Version"), h("th", {}, "Saved"), h("th", {}, "By"), h("th", {}, "Note"), h("th", {}, ""))),
      rows),
    moreHolder, diffHolder), { wide: true });
  load();
  return dialog;
}
