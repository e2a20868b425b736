// Pieces the builder's sections share: a labelled field, errors shown next to their
// fields, and a button that is busy while its work runs.
import { clear, fieldError, h } from "../dom.js";

export function labelled(field, labelText, control, hint, extra) {
  return h("div", { class: "field", "data-field": field },
    h("label", { for: control.id }, labelText), control, extra || null, hint ? h("p", { class: "hint" }, hint) : null);
}

export function clearErrors(state) {
  const { root } = state;
  root.querySelectorAll(".field-error").forEach((e) => e.remove());
  root.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  root.querySelectorAll(".step.has-error").forEach((e) => e.classList.remove("has-error"));
  clear(root.querySelector("#save-error"));
}

// The message goes next to the closest field the page has for it (cards.0.inputs.url, then
// cards.0.inputs, …), or in the banner above the page. focus: scroll to it and focus it.
export function showError(state, field, message, { focus = true } = {}) {
  const { root } = state;
  let holder = null;
  if (field) {
    const parts = field.split(".");
    for (let n = parts.length; n > 0 && !holder; n -= 1) {
      holder = root.querySelector(`[data-field="${CSS.escape(parts.slice(0, n).join("."))}"]`);
    }
  }
  if (!holder) {
    const banner = root.querySelector("#save-error");
    if (!banner.querySelector(".banner")) banner.append(h("div", { class: "banner banner-error", role: "alert" }, h("ul", { class: "banner-list" })));
    banner.querySelector(".banner-list").append(h("li", {}, message));
    if (focus) banner.scrollIntoView({ block: "center", behavior: "smooth" });
    return;
  }
  holder.append(fieldError(field, message, holder));
  holder.closest(".step")?.classList.add("has-error");
  // a named row's problem is its value; an unnamed row's, its name
  const input = (holder.classList.contains("pair") && !/\.#\d+$/.test(holder.dataset.field) && holder.querySelector(".pair-value"))
    || holder.querySelector("input, select, textarea");
  if (input) input.setAttribute("aria-invalid", "true");
  if (!focus) return;
  holder.scrollIntoView({ block: "center", behavior: "smooth" });
  (input || holder).focus?.();
}

// Several problems at once (a save names them all): each at its field, the first focused,
// and a count above the page when there is more than one.
export function showErrors(state, problems) {
  if (problems.length > 1) {
    clear(state.root.querySelector("#save-error"), h("p", { class: "banner banner-error", role: "alert", id: "problem-count" },
      `${problems.length} problems to fix before saving: each is shown at its field.`));
  }
  problems.slice().reverse().forEach((p, i) => showError(state, p.field, p.message, { focus: i === problems.length - 1 }));
}

export async function busy(button, work) {
  if (button.disabled) return;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try { await work(); } finally { button.disabled = false; button.removeAttribute("aria-busy"); }
}
