// Create / edit an endpoint with a form that builds the REST API's JSON, shown live beside the form.

import { endpointsApi } from "./api.js";
import { clear, copyText, field, flash, h, notify, pretty } from "./dom.js";

// provider -> [config key, URL field or null, secret field]
const PROVIDERS = {
  openai: ["openai_config", "openai_api_base", "openai_api_key"],
  anthropic: ["anthropic_config", null, "anthropic_api_key"],
  cohere: ["cohere_config", "cohere_api_base", "cohere_api_key"],
  custom: ["custom_provider_config", "custom_provider_url", null],
};
const TASKS = [
  ["llm/v1/chat", "Chat (llm/v1/chat)"],
  ["llm/v1/completions", "Completions (llm/v1/completions)"],
  ["llm/v1/embeddings", "Embeddings (llm/v1/embeddings)"],
];

function select(name, options, value) {
  const el = h("select", { name });
  for (const [v, label] of options) el.append(h("option", { value: v, selected: v === value }, label));
  return el;
}

/** The served-entity input a row of the form stands for. */
function entityFromRow(row, task) {
  const provider = row.provider.value;
  const [configKey, urlField, keyField] = PROVIDERS[provider];
  const config = {};
  const url = row.url.value.trim();
  const secret = row.secret.value.trim();
  const isReference = row.secretKind.value === "reference";
  if (urlField && url) config[urlField] = url;
  if (provider === "custom") {
    if (secret) config.bearer_token_auth = isReference ? { token: secret } : { token_plaintext: secret };
  } else if (secret) {
    config[isReference ? keyField : `${keyField}_plaintext`] = secret;
  }
  const entity = { external_model: { name: row.model.value.trim(), provider, task, [configKey]: config } };
  const name = row.name.value.trim();
  return name ? { name, ...entity } : entity;
}

const MASK = "********";

/** A copy of a request body for display: every plain key (`..._plaintext`) is masked, at any depth.
 * Only the preview is masked; the body sent to the server keeps the values. */
export function maskPlaintext(value) {
  if (Array.isArray(value)) return value.map(maskPlaintext);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k.endsWith("_plaintext") && typeof v === "string" && v ? MASK : maskPlaintext(v)]),
  );
}

function defaultEntityName(entity) {
  return entity.name || entity.external_model.name.replace(/[.:]/g, "-");
}

/** Build the create body, or for edits the config and ai-gateway bodies, from the form's controls. */
function buildBodies(form, rows, existingGateway) {
  const task = form.task.value;
  const served_entities = rows.map((r) => entityFromRow(r, task));
  const config = { served_entities };
  if (rows.length > 1 || rows.some((r) => r.traffic.value !== "100")) {
    config.traffic_config = {
      routes: served_entities.map((e, i) => ({
        served_entity_name: defaultEntityName(e),
        traffic_percentage: Number(rows[i].traffic.value || 0),
      })),
    };
  }
  const gateway = { ...(existingGateway || {}) };
  delete gateway.usage_tracking_config;
  delete gateway.rate_limits;
  delete gateway.fallback_config;
  if (form.usage.checked) gateway.usage_tracking_config = { enabled: true };
  const calls = Number(form.rateLimit.value);
  if (form.rateLimit.value !== "" && calls > 0) {
    gateway.rate_limits = [{ calls, key: form.rateKey.value, renewal_period: "minute" }];
  }
  if (form.fallback.checked) gateway.fallback_config = { enabled: true };
  const tags = form.tags.value
    .split(/[\n,]/)
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => {
      const [key, ...rest] = t.split("=");
      return rest.length ? { key: key.trim(), value: rest.join("=").trim() } : { key: key.trim() };
    });
  const create = { name: form.epName.value.trim(), config };
  if (form.description.value.trim()) create.description = form.description.value.trim();
  if (Object.keys(gateway).length) create.ai_gateway = gateway;
  if (tags.length) create.tags = tags;
  return { create, config, gateway };
}

function entityRow(list, onChange, entity, index) {
  const ext = entity?.external_model || {};
  const provider = ext.provider in PROVIDERS ? ext.provider : "openai";
  const cfg = ext[PROVIDERS[provider][0]] || {};
  const urlField = PROVIDERS[provider][1];
  const keyField = PROVIDERS[provider][2];
  const reference = provider === "custom" ? cfg.bearer_token_auth?.token : cfg[keyField];
  const row = {
    name: h("input", { name: "entity_name", value: entity?.name || "", placeholder: "from the model name" }),
    provider: select("provider", Object.keys(PROVIDERS).map((p) => [p, p]), provider),
    model: h("input", { name: "model", value: ext.name || "", required: true, placeholder: "gpt-4o-mini" }),
    url: h("input", { name: "api_base", type: "url", value: (urlField && cfg[urlField]) || "", placeholder: "https://api.openai.com/v1" }),
    secretKind: select("secret_kind", [["plaintext", "Key value"], ["reference", "Secret reference {{secrets/scope/key}}"]], reference ? "reference" : "plaintext"),
    secret: h("input", { name: "api_key", type: "password", autocomplete: "off", value: reference || "" }),
    traffic: h("input", { name: "traffic", type: "number", min: 0, max: 100, step: 1, value: "100" }),
  };
  const remove = h("button", { type: "button", class: "secondary small" }, "Remove served entity");
  const box = h(
    "fieldset",
    { class: "entity" },
    h("legend", {}, `Served entity ${index + 1}`),
    h(
      "div",
      { class: "grid-form" },
      field("Provider", row.provider),
      field("Model name", row.model, "The provider's model id."),
      field("Served entity name", row.name, "Optional; letters, digits, - and _."),
      field("API base URL", row.url, "Leave empty for the provider's default."),
      field("API key as", row.secretKind),
      field("API key", row.secret, entity ? "Re-enter a plain key: the server never sends keys back." : "Stored encrypted; never shown again."),
      field("Traffic %", row.traffic),
    ),
    remove,
  );
  row.box = box;
  row.remove = remove;
  box.addEventListener("input", onChange);
  box.addEventListener("change", onChange);
  list.append(box);
  return row;
}

export async function renderEndpointForm(root, ctx, name) {
  let existing = null;
  if (name) {
    try {
      existing = await endpointsApi.get(name);
    } catch (err) {
      notify(err.message, "error");
      return;
    }
  }
  const gw = existing?.ai_gateway || {};
  const form = h("form", { class: "card endpoint-form", "aria-labelledby": "form-title", novalidate: true });
  const controls = {
    epName: h("input", { name: "name", required: true, pattern: "[A-Za-z0-9_-]+", value: existing?.name || "", disabled: !!existing }),
    description: h("input", { name: "description", value: existing?.description || "", disabled: !!existing }),
    task: select("task", TASKS, existing?.task || "llm/v1/chat"),
    usage: h("input", { type: "checkbox", name: "usage_tracking", checked: !!gw.usage_tracking_config?.enabled }),
    rateLimit: h("input", { type: "number", name: "rate_limit", min: 1, value: gw.rate_limits?.[0]?.calls ?? "" }),
    rateKey: select("rate_key", [["endpoint", "whole endpoint"], ["user", "each user"]], gw.rate_limits?.[0]?.key || "endpoint"),
    fallback: h("input", { type: "checkbox", name: "fallback", checked: !!gw.fallback_config?.enabled }),
    tags: h("input", { name: "tags", value: "", disabled: !!existing, placeholder: "team=search, env=dev" }),
  };
  const entityList = h("div", { class: "entities" });
  const rows = [];
  const preview = h("pre", { class: "code", id: "json-preview", tabindex: 0, "aria-label": "Request JSON" });
  const formError = h("p", { class: "form-error", role: "alert", id: "form-error" });

  const refresh = () => {
    const bodies = buildBodies(controls, rows, existing?.ai_gateway);
    if (existing) {
      preview.textContent =
        `PUT /api/2.0/serving-endpoints/${existing.name}/config\n${pretty(maskPlaintext(bodies.config))}\n\n` +
        `PUT /api/2.0/serving-endpoints/${existing.name}/ai-gateway\n${pretty(bodies.gateway)}`;
    } else {
      preview.textContent = `POST /api/2.0/serving-endpoints\n${pretty(maskPlaintext(bodies.create))}`;
    }
    rows.forEach((r, i) => {
      r.remove.hidden = rows.length === 1;
      r.box.querySelector("legend").textContent = `Served entity ${i + 1}`;
    });
  };
  const addRow = (entity) => {
    const row = entityRow(entityList, refresh, entity, rows.length);
    row.remove.addEventListener("click", () => {
      rows.splice(rows.indexOf(row), 1);
      row.box.remove();
      refresh();
    });
    rows.push(row);
    return row;
  };
  const entities = existing?.config?.served_entities || [null];
  for (const e of entities) addRow(e);
  const routes = existing?.config?.traffic_config?.routes || [];
  rows.forEach((r, i) => {
    const route = routes.find((x) => x.served_entity_name === entities[i]?.name);
    if (route) r.traffic.value = String(route.traffic_percentage);
  });

  const submit = h("button", { type: "submit" }, existing ? "Save changes" : "Create endpoint");
  form.append(
    h("h1", { id: "form-title" }, existing ? `Edit ${existing.name}` : "Create serving endpoint"),
    h(
      "div",
      { class: "split" },
      h(
        "div",
        {},
        h(
          "fieldset",
          {},
          h("legend", {}, "Endpoint"),
          field("Name", controls.epName, "Letters, digits, - and _. Clients use it in the URL."),
          field("Description", controls.description),
          field("Task", controls.task),
          field("Tags", controls.tags, "key=value, comma separated."),
        ),
        entityList,
        h("button", { type: "button", class: "secondary", onclick: () => (addRow(null), refresh()) }, "Add served entity"),
        h(
          "fieldset",
          {},
          h("legend", {}, "AI Gateway"),
          h("div", { class: "check" }, controls.usage, h("label", { for: (controls.usage.id = "gw-usage") }, "Usage tracking")),
          field("Rate limit (calls per minute)", controls.rateLimit, "Empty: no limit."),
          field("Rate limit applies to", controls.rateKey),
          h("div", { class: "check" }, controls.fallback, h("label", { for: (controls.fallback.id = "gw-fallback") }, "Fall back to other served entities on errors")),
        ),
        formError,
        h("div", { class: "row" }, submit, h("a", { class: "button secondary", href: existing ? `#/serving/${encodeURIComponent(existing.name)}` : "#/serving" }, "Cancel")),
      ),
      h(
        "div",
        { class: "json-side" },
        h("h2", {}, "Request JSON"),
        h("p", { class: "hint" }, "What the form sends: the same body the REST API takes (plain API keys shown as ********; the request carries them)."),
        h("button", { type: "button", class: "secondary small", onclick: () => copyText(preview.textContent) }, "Copy JSON"),
        preview,
      ),
    ),
  );
  for (const c of [controls.epName, controls.description, controls.task, controls.usage, controls.rateLimit, controls.rateKey, controls.fallback, controls.tags]) {
    c.addEventListener("input", refresh);
    c.addEventListener("change", refresh);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    const bodies = buildBodies(controls, rows, existing?.ai_gateway);
    if (!existing && !/^[A-Za-z0-9_-]+$/.test(bodies.create.name)) {
      formError.textContent = "Give the endpoint a name made of letters, digits, - and _.";
      controls.epName.focus();
      return;
    }
    const missing = rows.find((r) => !r.model.value.trim());
    if (missing) {
      formError.textContent = "Every served entity needs a model name.";
      missing.model.focus();
      return;
    }
    submit.disabled = true;
    try {
      if (existing) {
        await endpointsApi.updateConfig(existing.name, bodies.config);
        await endpointsApi.putAiGateway(existing.name, bodies.gateway);
      } else {
        await endpointsApi.create(bodies.create);
      }
      const target = existing ? existing.name : bodies.create.name;
      location.hash = `#/serving/${encodeURIComponent(target)}`;
      flash(existing ? `Saved ${target}.` : `Created endpoint ${target}.`);
    } catch (err) {
      formError.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  clear(root).append(h("p", {}, h("a", { href: "#/serving" }, "← Serving endpoints")), form);
  refresh();
  (existing ? rows[0].model : controls.epName).focus();
}
