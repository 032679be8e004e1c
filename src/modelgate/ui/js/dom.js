// Tiny DOM helpers: build elements without innerHTML, so API data is never parsed as markup.

/** h("button", {type: "button", onclick}, "Save") -> HTMLButtonElement */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** SVG elements need their namespace. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A labelled form control: <div class="field"><label for=id>text</label>control hint</div>. */
let fieldSeq = 0;
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++fieldSeq}`;
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintEl = h("p", { class: "hint", id: `${control.id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return h("div", { class: "field" }, parts);
}

/** Show a message in the page's live region: kind is "error", "ok" or "info". */
export function notify(message, kind = "info") {
  const region = document.getElementById("notice");
  clear(region);
  if (!message) return;
  region.className = `notice ${kind}`;
  region.append(
    h("span", {}, message),
    h("button", { type: "button", class: "link", "aria-label": "Dismiss message", onclick: () => notify("") }, "×"),
  );
}

/** A table in a box that scrolls sideways when the table is wider than the page (keyboard-scrollable too). */
export function scrollable(table, label) {
  return h("div", { class: "table-scroll", role: "region", tabindex: 0, "aria-label": label }, table);
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    notify("Copied to the clipboard.", "ok");
  } catch {
    notify("The browser did not allow copying; select the text and copy it yourself.", "error");
  }
}

/** A modal yes/no question on a native <dialog> (focus-trapped, Escape cancels). */
export function confirmDialog(question, yesLabel = "Delete") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-q" },
      h("p", { id: "confirm-q" }, question),
      h(
        "form",
        { method: "dialog", class: "row" },
        h("button", { value: "no", class: "secondary" }, "Cancel"),
        h("button", { value: "yes", class: "danger" }, yesLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A message to show after the next navigation (route changes clear the notice otherwise).
let pendingFlash = null;

export function flash(message, kind = "ok") {
  pendingFlash = [message, kind];
}

export function showFlash() {
  const pending = pendingFlash;
  pendingFlash = null;
  if (pending) notify(...pending);
  else notify("");
}
