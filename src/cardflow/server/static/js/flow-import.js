// Importing a flow file: the server's refusals become steps. A file naming connections that
// are not here gets a mapping step (pick one of yours for each, or create it); a file whose
// flow is already here gets the clash dialog (replace it, or import as a copy). A file can
// need both: the mapping is kept for the import that follows the clash.
import { get, post } from "./api.js";
import { openConnectionDialog, showFormError } from "./connections.js";
import { clear, fieldError, h, modal, nextId, toast } from "./dom.js";

const NEW = "__new__";

// A flow of the same name (or alias) exists: replace it, import beside it, or neither.
function clashDialog(error) {
  return new Promise((resolve) => {
    let choice = null;
    const pick = (value) => () => { choice = value; dialog.close(); };
    const actions = [h("button", { type: "button", class: "btn", onclick: pick(null) }, "Cancel"),
      h("button", { type: "button", class: "btn", id: "import-as-copy", onclick: pick("as_copy") }, "Import as a copy")];
    if (error.field === "name") actions.push(h("button", { type: "button", class: "btn btn-primary", id: "import-replace", onclick: pick("replace") }, "Replace it"));
    const dialog = modal("This flow is already here", h("p", { id: "import-clash" }, error.message), { actions });
    dialog.addEventListener("close", () => resolve(choice));
    actions[actions.length - 1].focus();
  });
}

function connectionLabel(connection) {
  return connection.status === "ready" ? connection.name : `${connection.name} (${connection.status.replace("_", " ")})`;
}

function cardsText(cards) {
  const ids = cards.map((card) => `“${card.id}”`).join(", ");
  return cards.length === 1 ? `Used by card ${ids}.` : `Used by cards ${ids}.`;
}

// The file names connections that are not here: for each, a select of the connections that
// are (or "+ Create a new connection…"). "Import" sends the file again with the mapping.
// Resolves with { flow } once imported, { error } for a refusal the caller handles (the
// clash), or null if cancelled. body.connections keeps the mapping for what follows.
async function mappingDialog(body, error) {
  let connections = await get("/connections");
  return new Promise((resolve) => {
    let outcome = null;
    const formId = nextId("map");
    const formError = h("div", { class: "form-error", role: "alert" });
    const rows = error.details.missing_connections.map((missing) => {
      const id = nextId("map-conn");
      const hintId = `${id}-hint`;
      const select = h("select", { id, name: missing.name, "aria-describedby": hintId, "data-missing": missing.name });
      let previous = "";
      const fill = (chosen) => {
        clear(select,
          h("option", { value: "" }, "Choose a connection…"),
          connections.map((c) => h("option", { value: c.name, selected: c.name === chosen }, connectionLabel(c))),
          h("option", { value: NEW }, "+ Create a new connection…"));
        select.value = chosen;
        previous = chosen;
      };
      fill(body.connections?.[missing.name] || "");
      select.addEventListener("change", async () => {
        holder.querySelectorAll(".field-error").forEach((e) => e.remove());
        select.removeAttribute("aria-invalid");
        if (select.value !== NEW) { previous = select.value; return; }
        const created = await openConnectionDialog(null, { name: missing.name }); // as the file names it
        if (created) {
          connections = await get("/connections");
          // every select offers the new connection; this one takes it
          rows.forEach((row) => row.fill(row.select === select ? created.name : row.select.value === NEW ? "" : row.select.value));
        } else {
          select.value = previous;
        }
        select.focus();
      });
      const holder = h("div", { class: "field", "data-field": `connections.${missing.name}` },
        h("label", { for: id }, `Connection for “${missing.name}”`), select,
        h("p", { class: "hint", id: hintId }, cardsText(missing.cards)));
      return { missing, select, holder, fill };
    });
    const form = h("form", { class: "form", id: formId, novalidate: true },
      h("p", { id: "import-mapping-intro" }, `${body.filename ? `“${body.filename}”` : "The file"} names connections that are not here. Pick one of yours for each, or create it; the cards will use it.`),
      rows.map((row) => row.holder), formError);
    const submit = h("button", { type: "submit", class: "btn btn-primary", form: formId }, "Import");
    const cancel = h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Cancel");
    const dialog = modal("Choose the connections", form, { actions: [cancel, submit] });
    dialog.addEventListener("close", () => resolve(outcome));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      form.querySelectorAll(".field-error").forEach((e) => e.remove());
      form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
      clear(formError);
      const unchosen = rows.filter((row) => !row.select.value || row.select.value === NEW);
      for (const row of unchosen) {
        row.holder.append(fieldError(`connections.${row.missing.name}`, `Choose a connection for “${row.missing.name}”, or create one.`));
        row.select.setAttribute("aria-invalid", "true");
      }
      if (unchosen.length) { unchosen[0].select.focus(); return; }
      body.connections = Object.fromEntries(rows.map((row) => [row.missing.name, row.select.value]));
      submit.disabled = true;
      try {
        outcome = { flow: await post("/flows/import", body) };
        dialog.close();
      } catch (again) {
        if (again.type === "conflict") {
          outcome = { error: again };
          dialog.close();
        } else {
          showFormError(form, formError, again);
        }
      } finally {
        submit.disabled = false;
      }
    });
    rows[0].select.focus();
  });
}

async function send(body) {
  try {
    return { flow: await post("/flows/import", body) };
  } catch (error) {
    return { error };
  }
}

export async function importFile(file, reload) {
  const body = { content: await file.text(), filename: file.name };
  try {
    let answer = await send(body);
    if (answer.error?.details.missing_connections) {
      answer = await mappingDialog(body, answer.error);
      if (!answer) return;
    }
    let choice = null;
    if (answer.error?.type === "conflict") {
      choice = await clashDialog(answer.error);
      if (!choice) return;
      answer = await send({ ...body, [choice]: true });
    }
    if (answer.error) {
      toast(`${file.name}: ${answer.error.message}`, "error");
    } else {
      const name = answer.flow.name;
      toast(choice === "replace" ? `Replaced “${name}”.` : choice ? `Imported as “${name}”.` : `Imported “${name}”.`, "ok");
    }
  } catch (error) { // the list of connections could not be read
    toast(`${file.name}: ${error.message}`, "error");
  } finally {
    await reload();
  }
}
