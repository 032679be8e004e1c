// Entry point: sign-in, the top bar, and the hash router (#/serving, #/serving/<name>, #/playground, #/usage).

import { ApiError, whoAmI } from "./api.js";
import { clear, field, h, notify, showFlash } from "./dom.js";
import { renderPlayground } from "./playground.js";
import { renderEndpointDetail, renderEndpointList } from "./serving.js";
import { renderEndpointForm } from "./endpoint_form.js";
import { getToken, setToken, signOut } from "./session.js";
import { renderUsage, stopUsage } from "./usage.js";

const main = document.getElementById("main");
const state = { me: null };

function showSignIn(message) {
  state.me = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  clear(main);
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
    placeholder: "dapi…",
  });
  const error = h("p", { class: "form-error", id: "signin-error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to modelgate"),
    h("p", {}, "Paste a personal access token. It stays in this browser tab only and is cleared when you sign out."),
    field("Access token", input, "The admin token (MODELGATE_ADMIN_TOKEN) or one made with `modelgate tokens create`."),
    error,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    error.textContent = "";
    try {
      const me = await whoAmI(token);
      setToken(token);
      start(me);
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? `This token was not accepted (401 ${err.errorCode}): ${err.serverMessage} Check that you pasted the whole token and that it has not been revoked or expired.`
          : err.message;
      input.focus();
    }
  });
  main.append(form);
  input.focus();
}

function start(me) {
  state.me = me;
  const admin = (me.groups || []).some((g) => g.display === "admins");
  document.getElementById("who-name").textContent = `${me.userName}${admin ? " (admin)" : ""}`;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  notify("");
  if (!location.hash || location.hash === "#/") location.hash = "#/serving";
  else route();
}

function route() {
  if (!state.me) return;
  stopUsage();
  showFlash();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, name, action] = parts;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.route === (page || "serving")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(main);
  const ctx = { me: state.me };
  if (page === "playground") renderPlayground(main, ctx, name);
  else if (page === "usage") renderUsage(main, ctx, name);
  else if (page === "create") renderEndpointForm(main, ctx, null);
  else if (page === "serving" && name && action === "edit") renderEndpointForm(main, ctx, name);
  else if (page === "serving" && name) renderEndpointDetail(main, ctx, name);
  else renderEndpointList(main, ctx);
  main.focus({ preventScroll: true });
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  stopUsage();
  history.replaceState(null, "", "#/");
  showSignIn("You are signed out; the token was removed from this tab.");
});

window.addEventListener("hashchange", route);

async function boot() {
  const token = getToken();
  if (!token) return showSignIn();
  try {
    start(await whoAmI(token));
  } catch (err) {
    signOut();
    showSignIn(err.message);
  }
}

boot();
