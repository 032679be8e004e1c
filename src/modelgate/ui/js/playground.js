// AI Playground: one chat per selected endpoint, side by side, all answering the same prompt in parallel.

import { authHeaders, endpointsApi } from "./api.js";
import { applyChunk, fromCompletion, historyMessage, newAnswer } from "./chat_state.js";
import { clear, field, h, notify } from "./dom.js";
import { sseJson } from "./sse.js";

const MAX_IMAGE_BYTES = 4 * 1024 * 1024;

/** One column: an endpoint, its message history and the DOM list it renders into. */
class Column {
  constructor(endpoint) {
    this.endpoint = endpoint;
    this.history = [];
    this.log = h("ol", { class: "transcript", "aria-label": `Conversation with ${endpoint}`, "aria-live": "polite" });
    this.el = h(
      "section",
      { class: "column", dataset: { endpoint }, "aria-label": `Answers from ${endpoint}` },
      h("h2", {}, endpoint),
      this.log,
    );
  }

  clear() {
    this.history = [];
    clear(this.log);
  }
}

function userBubble(text, images) {
  return h(
    "li",
    { class: "msg user" },
    h("span", { class: "who" }, "You"),
    h("div", { class: "text" }, text),
    images.map((url) => h("img", { src: url, alt: "Attached image", class: "thumb" })),
  );
}

function renderAnswer(li, answer, meta) {
  clear(li);
  li.append(h("span", { class: "who" }, "Assistant"));
  if (answer.reasoning) {
    li.append(
      h("details", { class: "reasoning" }, h("summary", {}, "Reasoning"), h("div", { class: "text" }, answer.reasoning)),
    );
  }
  if (answer.text || (!answer.toolCalls.length && !answer.error)) {
    li.append(h("div", { class: "text answer" }, answer.text || (meta.done ? "" : "…")));
  }
  for (const call of answer.toolCalls) {
    let args = call.arguments;
    try {
      args = JSON.stringify(JSON.parse(call.arguments), null, 2);
    } catch {
      /* still streaming, or not JSON: show as is */
    }
    li.append(
      h("div", { class: "tool-call" }, h("span", { class: "label" }, "Tool call "), h("code", {}, call.name), h("pre", { class: "code" }, args)),
    );
  }
  if (answer.error) li.append(h("p", { class: "error" }, answer.error));
  if (meta.done) {
    const u = answer.usage;
    const parts = [];
    if (u) parts.push(`${u.prompt_tokens ?? "?"} in · ${u.completion_tokens ?? "?"} out tokens`);
    parts.push(`${meta.ms} ms`);
    if (meta.firstMs !== null && meta.stream) parts.push(`first token ${meta.firstMs} ms`);
    if (answer.finishReason) parts.push(`finish: ${answer.finishReason}`);
    li.append(h("p", { class: "meta" }, parts.join(" · ")));
  }
}

async function readError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return `${response.status} ${body.error_code || ""}: ${body.message || text}`;
  } catch {
    return `${response.status}: ${text}`;
  }
}

/** Ask one endpoint; render as chunks arrive. Returns the finished answer. */
async function ask(column, request, signal) {
  const li = h("li", { class: "msg assistant" });
  column.log.append(li);
  const answer = newAnswer();
  const meta = { done: false, ms: 0, firstMs: null, stream: request.stream };
  renderAnswer(li, answer, meta);
  const started = performance.now();
  try {
    const response = await fetch(endpointsApi.invocationsPath(column.endpoint), {
      method: "POST",
      headers: { ...authHeaders(), "Content-Type": "application/json" },
      body: JSON.stringify(request),
      signal,
    });
    if (!response.ok) {
      answer.error = await readError(response);
    } else if (request.stream) {
      for await (const chunk of sseJson(response)) {
        if (meta.firstMs === null) meta.firstMs = Math.round(performance.now() - started);
        applyChunk(answer, chunk);
        renderAnswer(li, answer, meta);
      }
    } else {
      Object.assign(answer, fromCompletion(await response.json()));
    }
  } catch (err) {
    answer.error = err.name === "AbortError" ? "Stopped." : `Could not reach the server: ${err.message}`;
  }
  meta.done = true;
  meta.ms = Math.round(performance.now() - started);
  answer.latencyMs = meta.ms;
  renderAnswer(li, answer, meta);
  li.dataset.done = "true";
  return answer;
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export async function renderPlayground(root, ctx, preselect) {
  let endpoints = [];
  try {
    endpoints = (await endpointsApi.list()).filter((e) => e.task === "llm/v1/chat");
  } catch (err) {
    notify(err.message, "error");
  }
  const columns = new Map();
  const board = h("div", { class: "board" });
  const picker = h("fieldset", { class: "picker" }, h("legend", {}, "Endpoints to compare"));
  if (!endpoints.length) picker.append(h("p", { class: "hint" }, "No chat endpoints you can see yet."));
  const chosen = new Set([preselect && endpoints.some((e) => e.name === preselect) ? preselect : endpoints[0]?.name].filter(Boolean));

  const syncColumns = () => {
    for (const name of [...columns.keys()]) {
      if (!chosen.has(name)) {
        columns.get(name).el.remove();
        columns.delete(name);
      }
    }
    for (const e of endpoints) {
      if (chosen.has(e.name) && !columns.has(e.name)) columns.set(e.name, new Column(e.name));
    }
    clear(board).append(...endpoints.filter((e) => chosen.has(e.name)).map((e) => columns.get(e.name).el));
    if (!columns.size) board.append(h("p", { class: "hint" }, "Pick at least one endpoint."));
  };
  for (const e of endpoints) {
    const box = h("input", { type: "checkbox", name: "endpoint", value: e.name, id: `pick-${e.name}`, checked: chosen.has(e.name) });
    box.addEventListener("change", () => {
      if (box.checked) chosen.add(e.name);
      else chosen.delete(e.name);
      syncColumns();
    });
    picker.append(h("div", { class: "check" }, box, h("label", { for: box.id }, e.name)));
  }

  const system = h("textarea", { name: "system", rows: 3, placeholder: "You are a helpful assistant." });
  const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: "0.7" });
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: 1, step: 1, value: "256" });
  const stream = h("input", { type: "checkbox", id: "pg-stream", checked: true });
  const tools = h("textarea", { name: "tools", rows: 5, class: "code", placeholder: '[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]' });
  const prompt = h("textarea", { name: "prompt", rows: 3, placeholder: "Ask something… (Enter sends, Shift+Enter for a new line)" });
  const attach = h("input", { type: "file", accept: "image/*", multiple: true, name: "images" });
  const thumbs = h("div", { class: "thumbs", "aria-live": "polite" });
  let images = [];
  let controller = null;

  const drawThumbs = () => {
    clear(thumbs);
    images.forEach((url, i) => {
      thumbs.append(
        h(
          "span",
          { class: "thumb-wrap" },
          h("img", { src: url, alt: `Attachment ${i + 1}`, class: "thumb" }),
          h("button", { type: "button", class: "secondary small", "aria-label": `Remove attachment ${i + 1}`, onclick: () => { images.splice(i, 1); drawThumbs(); } }, "×"),
        ),
      );
    });
  };
  attach.addEventListener("change", async () => {
    for (const file of attach.files) {
      if (file.size > MAX_IMAGE_BYTES) {
        notify(`${file.name} is larger than 4 MB; attach a smaller image.`, "error");
        continue;
      }
      images.push(await readAsDataUrl(file));
    }
    attach.value = "";
    drawThumbs();
  });

  const sendButton = h("button", { type: "submit" }, "Send");
  const stopButton = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller?.abort() }, "Stop");

  const buildRequest = (column, userMessage) => {
    const messages = [];
    if (system.value.trim()) messages.push({ role: "system", content: system.value.trim() });
    messages.push(...column.history, userMessage);
    const request = { messages, stream: stream.checked };
    if (temperature.value !== "") request.temperature = Number(temperature.value);
    if (maxTokens.value !== "") request.max_tokens = Number(maxTokens.value);
    if (tools.value.trim()) request.tools = JSON.parse(tools.value);
    return request;
  };

  const send = async () => {
    const text = prompt.value.trim();
    if (!text && !images.length) return prompt.focus();
    if (!columns.size) return notify("Pick at least one endpoint to send to.", "error");
    if (tools.value.trim()) {
      try {
        JSON.parse(tools.value);
      } catch (err) {
        return notify(`Tools must be a JSON array: ${err.message}`, "error");
      }
    }
    const content = images.length
      ? [{ type: "text", text }, ...images.map((url) => ({ type: "image_url", image_url: { url } }))]
      : text;
    const userMessage = { role: "user", content };
    const shownImages = images;
    prompt.value = "";
    images = [];
    drawThumbs();
    controller = new AbortController();
    sendButton.disabled = true;
    stopButton.disabled = false;
    await Promise.all(
      [...columns.values()].map(async (column) => {
        const request = buildRequest(column, userMessage);
        column.log.append(userBubble(text, shownImages));
        const answer = await ask(column, request, controller.signal);
        if (!answer.error) column.history.push(userMessage, historyMessage(answer));
        column.lastAnswers = [...(column.lastAnswers || []), { usage: answer.usage, latency_ms: answer.latencyMs, error: answer.error }];
      }),
    );
    controller = null;
    sendButton.disabled = false;
    stopButton.disabled = true;
    prompt.focus();
  };

  const clearAll = () => {
    for (const column of columns.values()) {
      column.clear();
      column.lastAnswers = [];
    }
    notify("Conversation cleared.", "ok");
  };

  const exportAll = () => {
    const data = {
      exported_at: new Date().toISOString(),
      settings: {
        system_prompt: system.value,
        temperature: temperature.value === "" ? null : Number(temperature.value),
        max_tokens: maxTokens.value === "" ? null : Number(maxTokens.value),
        stream: stream.checked,
      },
      conversations: [...columns.values()].map((c) => ({ endpoint: c.endpoint, messages: c.history, answers: c.lastAnswers || [] })),
    };
    const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
    const link = h("a", { href: url, download: `playground-${Date.now()}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  const composer = h(
    "form",
    { class: "composer", "aria-label": "Send a prompt" },
    field("Prompt", prompt),
    h("div", { class: "row" }, field("Attach images (vision endpoints)", attach), thumbs),
    h(
      "div",
      { class: "row" },
      sendButton,
      stopButton,
      h("button", { type: "button", class: "secondary", onclick: clearAll }, "Clear conversation"),
      h("button", { type: "button", class: "secondary", onclick: exportAll }, "Export JSON"),
    ),
  );
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!sendButton.disabled) send();
    }
  });

  root.append(
    h("h1", {}, "Playground"),
    h(
      "div",
      { class: "playground" },
      h(
        "aside",
        { class: "settings", "aria-label": "Settings" },
        picker,
        field("System prompt", system),
        field("Temperature", temperature, "0 to 2."),
        field("Max tokens", maxTokens),
        h("div", { class: "check" }, stream, h("label", { for: stream.id }, "Stream answers")),
        h("details", {}, h("summary", {}, "Tools (JSON)"), field("Tools", tools, "OpenAI-style function tools; the model may answer with tool calls.")),
      ),
      h("div", { class: "chat" }, board, composer),
    ),
  );
  syncColumns();
  prompt.focus();
}
