// Users page (owners only): users and their roles, invitations as one-time links, removal.
import { del, enc, get, patch, post } from "./api.js";
import { clear, confirmDialog, copyButton, emptyState, formatTime, h, modal, pageHeader, toast } from "./dom.js";

const ROLES = ["viewer", "builder", "admin", "owner"];
const ROLE_HELP = {
  viewer: "reads flows and run history",
  builder: "edits, runs and tests flows; uses connections shared with them",
  admin: "everything but users",
  owner: "everything",
};

function roleSelect(id, value, onchange) {
  return h("select", { id, onchange },
    ROLES.map((r) => h("option", { value: r, selected: r === value }, `${r} — ${ROLE_HELP[r]}`)));
}

export async function usersPage(root) {
  const users = h("div", {});
  const invites = h("div", {});
  const invite = h("button", { type: "button", class: "btn btn-primary", "data-action": "invite-user", onclick: () => openInvite() }, "+ Invite user");
  clear(root, pageHeader("Users", "Who may use cardflow, and with which role. Removing a user ends their sessions and revokes their API tokens.", invite),
    users, h("h2", {}, "Pending invitations"), invites);

  function openInvite() {
    const name = h("input", { type: "text", id: "invite-name", maxlength: "200", autocomplete: "off" });
    const email = h("input", { type: "email", id: "invite-email", maxlength: "320", autocomplete: "off" });
    const role = roleSelect("invite-role", "builder");
    const error = h("p", { class: "form-error", id: "invite-error", role: "alert" });
    const result = h("div", { id: "invite-result" });
    const submit = h("button", { type: "submit", class: "btn btn-primary", form: "invite-form" }, "Create invitation");
    const form = h("form", { id: "invite-form", onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const made = await post("/users/invites", { name: name.value || null, email: email.value || null, role: role.value });
        const link = h("input", { type: "text", id: "invite-url", readonly: true, value: made.url, class: "mono" });
        clear(result, h("p", {}, `Give this link to ${made.name} (${made.role}). It works once, until ${formatTime(made.expires_at)}, and is not shown again.`),
          h("div", { class: "copy-row" }, link, copyButton(() => made.url)));
        submit.remove();
        await load();
      } catch (failure) { error.textContent = failure.message; }
    } },
      h("div", { class: "field" }, h("label", { for: "invite-name" }, "Name"), name),
      h("div", { class: "field" }, h("label", { for: "invite-email" }, "Email (optional; the name if none is given)"), email),
      h("div", { class: "field" }, h("label", { for: "invite-role" }, "Role"), role),
      error, result);
    const dialog = modal("Invite a user", form, { actions: [h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Close"), submit] });
    name.focus();
  }

  async function load() {
    const [all, pending] = await Promise.all([get("/users"), get("/users/invites")]);
    clear(users, h("table", { class: "table", id: "users-table" },
      h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Since", h("span", { class: "sr-only" }, "Actions")].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, all.map((user) => h("tr", { "data-user": user.name },
        h("td", {}, h("strong", {}, user.name)),
        h("td", {}, user.email || ""),
        h("td", {}, roleSelect(`role-${user.id}`, user.role, async (event) => {
          try { await patch(`/users/${enc(user.id)}`, { role: event.currentTarget.value }); toast(`${user.name} is now ${event.currentTarget.value}.`, "ok"); }
          catch (failure) { toast(failure.message, "error"); }
          await load();
        })),
        h("td", { class: "nowrap muted" }, formatTime(user.created_at)),
        h("td", { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Remove ${user.name}`, onclick: async () => {
            if (!await confirmDialog(`Remove “${user.name}”?`, "Their sessions end and their API tokens are revoked.", { confirmLabel: "Remove" })) return;
            try { await del(`/users/${enc(user.id)}`); toast(`Removed ${user.name}.`, "ok"); }
            catch (failure) { toast(failure.message, "error"); }
            await load();
          } }, "Remove")))))));
    clear(invites, pending.length
      ? h("table", { class: "table", id: "invites-table" },
        h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Expires", h("span", { class: "sr-only" }, "Actions")].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, pending.map((item) => h("tr", { "data-invite": item.name },
          h("td", {}, item.name), h("td", {}, item.email || ""), h("td", {}, item.role),
          h("td", { class: "nowrap muted" }, formatTime(item.expires_at)),
          h("td", { class: "row-actions" }, h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "aria-label": `Cancel the invitation of ${item.name}`, onclick: async () => {
            try { await del(`/users/invites/${enc(item.id)}`); } catch (failure) { toast(failure.message, "error"); }
            await load();
          } }, "Cancel"))))))
      : emptyState("No pending invitations", "Invite someone: they get a one-time link that creates their user."));
  }
  await load();
}
