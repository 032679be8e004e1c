// "Query endpoint": a JSON request editor, "Show example", "Send request", the formatted answer and snippets.

import { ApiError, authHeaders, endpointsApi } from "./api.js";
import { copyText, field, h, pretty } from "./dom.js";
import { exampleFor } from "./examples.js";
import { curlSnippet, pythonSnippet, sqlSnippet } from "./snippets.js";

function tabs(label, panels) {
  const list = h("div", { role: "tablist", "aria-label": label, class: "tabs" });
  const wrap = h("div", { class: "tabset" }, list);
  const buttons = panels.map(([title], i) =>
    h("button", { type: "button", role: "tab", id: `tab-${title}`, "aria-selected": String(i === 0), tabindex: i ? -1 : 0 }, title),
  );
  const bodies = panels.map(([title, content], i) =>
    h("div", { role: "tabpanel", id: `panel-${title}`, "aria-labelledby": `tab-${title}`, hidden: i !== 0 }, content),
  );
  const select = (i) => {
    buttons.forEach((b, j) => {
      b.setAttribute("aria-selected", String(i === j));
      b.tabIndex = i === j ? 0 : -1;
      bodies[j].hidden = i !== j;
    });
    buttons[i].focus();
  };
  buttons.forEach((b, i) => {
    b.addEventListener("click", () => select(i));
    b.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight") select((i + 1) % buttons.length);
      if (e.key === "ArrowLeft") select((i + buttons.length - 1) % buttons.length);
    });
  });
  list.append(...buttons);
  wrap.append(...bodies);
  return wrap;
}

export function renderQueryPanel(root, ep) {
  const editor = h("textarea", { class: "code", rows: 14, spellcheck: "false", name: "request" });
  editor.value = pretty(exampleFor(ep.task));
  const status = h("p", { class: "status", id: "query-status", "aria-live": "polite" });
  const output = h("pre", { class: "code", id: "query-response", tabindex: 0, "aria-label": "Response" }, "—");
  const snippetBox = {
    curl: h("pre", { class: "code", id: "snippet-curl" }),
    python: h("pre", { class: "code", id: "snippet-python" }),
    sql: h("pre", { class: "code", id: "snippet-sql" }),
  };
  const origin = location.origin;

  const updateSnippets = () => {
    let body;
    try {
      body = JSON.parse(editor.value);
    } catch {
      for (const box of Object.values(snippetBox)) box.textContent = "The request is not valid JSON yet.";
      return;
    }
    snippetBox.curl.textContent = curlSnippet(origin, ep.name, body);
    snippetBox.python.textContent = pythonSnippet(origin, ep.name, ep.task, body);
    snippetBox.sql.textContent = sqlSnippet(ep.name, ep.task, body);
  };

  const send = async () => {
    let body;
    try {
      body = JSON.parse(editor.value);
    } catch (err) {
      status.className = "status bad";
      status.textContent = `The request is not valid JSON: ${err.message}`;
      editor.focus();
      return;
    }
    sendButton.disabled = true;
    status.className = "status";
    status.textContent = "Sending…";
    const started = performance.now();
    try {
      const response = await fetch(endpointsApi.invocationsPath(ep.name), {
        method: "POST",
        headers: { ...authHeaders(), "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      const ms = Math.round(performance.now() - started);
      let shown = text;
      try {
        shown = pretty(JSON.parse(text));
      } catch {
        /* streamed or plain text: show as received */
      }
      const served = response.headers.get("served-model-name");
      status.className = `status ${response.ok ? "good" : "bad"}`;
      status.textContent = `${response.status} ${response.ok ? "OK" : response.statusText} · ${ms} ms${served ? ` · served by ${served}` : ""}`;
      if (!response.ok) {
        const err = (() => {
          try {
            const parsed = JSON.parse(text);
            return new ApiError(response.status, parsed.error_code, parsed.message);
          } catch {
            return new ApiError(response.status, "", text);
          }
        })();
        status.textContent += ` — ${err.message}`;
      }
      output.textContent = shown;
    } catch (err) {
      status.className = "status bad";
      status.textContent = `Could not reach the server: ${err.message}`;
    } finally {
      sendButton.disabled = false;
    }
  };

  const sendButton = h("button", { type: "button", onclick: send }, "Send request");
  editor.addEventListener("input", updateSnippets);
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send();
  });
  const exampleButton = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: () => {
        editor.value = pretty(exampleFor(ep.task));
        updateSnippets();
      },
    },
    "Show example",
  );
  updateSnippets();
  const copyButton = (key) =>
    h("button", { type: "button", class: "secondary small", onclick: () => copyText(snippetBox[key].textContent) }, "Copy");

  root.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "query-title" },
      h("h2", { id: "query-title" }, "Query endpoint"),
      h(
        "div",
        { class: "split" },
        h(
          "div",
          {},
          field("Request (JSON)", editor, "Ctrl+Enter sends. The body goes to POST /serving-endpoints/<name>/invocations."),
          h("div", { class: "row" }, exampleButton, sendButton),
        ),
        h("div", {}, h("h3", {}, "Response"), status, output),
      ),
      h("h3", {}, "Use it from code"),
      tabs("Snippets", [
        ["curl", [copyButton("curl"), snippetBox.curl]],
        ["Python", [copyButton("python"), snippetBox.python]],
        ["SQL", [copyButton("sql"), snippetBox.sql]],
      ]),
    ),
  );
}
