// Serving page: the endpoint list and one endpoint's detail (with its "Query endpoint" panel).

import { endpointsApi } from "./api.js";
import { clear, confirmDialog, flash, h, notify, pretty, scrollable } from "./dom.js";
import { renderQueryPanel } from "./query.js";

const TASK_LABELS = {
  "llm/v1/chat": "Chat",
  "llm/v1/completions": "Completions",
  "llm/v1/embeddings": "Embeddings",
};

export function taskLabel(task) {
  return TASK_LABELS[task] || task || "—";
}

export function stateBadge(state) {
  const ready = state?.ready === "READY";
  const updating = state?.config_update === "IN_PROGRESS";
  const failed = state?.config_update === "UPDATE_FAILED";
  const text = failed ? "Update failed" : updating ? "Updating" : ready ? "Ready" : "Not ready";
  return h("span", { class: `badge ${failed ? "bad" : ready && !updating ? "good" : "warn"}` }, text);
}

export function entityModel(entity) {
  const ext = entity.external_model;
  if (ext) return `${ext.provider} · ${ext.name}`;
  if (entity.foundation_model) return entity.foundation_model.display_name || entity.foundation_model.name;
  return [entity.entity_name, entity.entity_version].filter(Boolean).join(" v");
}

export function gatewaySummary(gateway) {
  if (!gateway) return "Off";
  const parts = [];
  if (gateway.usage_tracking_config?.enabled) parts.push("usage tracking");
  if (gateway.inference_table_config?.enabled) parts.push("inference table");
  if (gateway.rate_limits?.length) {
    parts.push(
      gateway.rate_limits
        .map((r) => `${r.calls ? `${r.calls} calls` : `${r.tokens} tokens`}/${r.renewal_period} per ${r.key || "endpoint"}`)
        .join(", "),
    );
  }
  if (gateway.guardrails) parts.push("guardrails");
  if (gateway.fallback_config?.enabled) parts.push("fallbacks");
  return parts.length ? parts.join("; ") : "Off";
}

function trafficText(endpoint) {
  const routes = endpoint.config?.traffic_config?.routes || [];
  if (!routes.length) {
    const entities = endpoint.config?.served_entities || [];
    return entities.length === 1 ? `${entities[0].name}: 100%` : "—";
  }
  return routes.map((r) => `${r.served_entity_name || r.served_model_name}: ${r.traffic_percentage}%`).join(", ");
}

export async function renderEndpointList(root, ctx) {
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 6 }, "Loading…")));
  const table = h(
    "table",
    { class: "grid", "aria-labelledby": "serving-title" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Name", "State", "Task", "Served entities", "AI Gateway", "Created by"].map((t) => h("th", { scope: "col" }, t)),
      ),
    ),
    body,
  );
  root.append(
    h(
      "div",
      { class: "page-head" },
      h("h1", { id: "serving-title" }, "Serving endpoints"),
      h("a", { class: "button", href: "#/create" }, "Create serving endpoint"),
    ),
    scrollable(table, "Serving endpoints table"),
  );
  let endpoints;
  try {
    endpoints = await endpointsApi.list();
  } catch (err) {
    clear(body).append(h("tr", {}, h("td", { colspan: 6 }, "Could not load endpoints.")));
    notify(err.message, "error");
    return;
  }
  clear(body);
  if (!endpoints.length) {
    body.append(h("tr", {}, h("td", { colspan: 6 }, "No endpoints yet. Create one to start serving a model.")));
  }
  for (const ep of endpoints) {
    const entities = ep.config?.served_entities || [];
    body.append(
      h(
        "tr",
        { dataset: { endpoint: ep.name } },
        h("td", {}, h("a", { href: `#/serving/${encodeURIComponent(ep.name)}` }, ep.name)),
        h("td", {}, stateBadge(ep.state)),
        h("td", {}, taskLabel(ep.task)),
        h("td", {}, h("ul", { class: "plain" }, entities.map((e) => h("li", {}, `${e.name} (${entityModel(e)})`)))),
        h("td", {}, gatewaySummary(ep.ai_gateway)),
        h("td", {}, ep.creator || "—"),
      ),
    );
  }
}

function definitionList(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

export async function renderEndpointDetail(root, ctx, name) {
  root.append(h("p", {}, h("a", { href: "#/serving" }, "← Serving endpoints")));
  let ep;
  try {
    ep = await endpointsApi.get(name);
  } catch (err) {
    root.append(h("h1", {}, name));
    notify(err.message, "error");
    return;
  }
  const canManage = ep.permission_level === "CAN_MANAGE";
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete");
  deleteButton.addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete the serving endpoint "${name}"? Clients querying it will get errors.`))) return;
    try {
      await endpointsApi.remove(name);
      location.hash = "#/serving";
      flash(`Deleted endpoint ${name}.`);
    } catch (err) {
      notify(err.message, "error");
    }
  });
  const entities = ep.config?.served_entities || [];
  // Native append would print null as text; h() skips it, so wrap the page in a fragment-like div.
  root.append(
    h(
      "div",
      { class: "endpoint-detail" },
        h(
        "div",
        { class: "page-head" },
        h("h1", {}, ep.name, " ", stateBadge(ep.state)),
        h(
          "div",
          { class: "row" },
          h("a", { class: "button secondary", href: `#/playground/${encodeURIComponent(name)}` }, "Open in Playground"),
          h("a", { class: "button secondary", href: `#/usage/${encodeURIComponent(name)}` }, "Usage"),
          h("a", { class: "button secondary", href: `#/serving/${encodeURIComponent(name)}/edit` }, "Edit"),
          deleteButton,
        ),
      ),
      ep.description ? h("p", {}, ep.description) : null,
      canManage ? null : h("p", { class: "hint" }, `Your permission: ${ep.permission_level || "none"}.`),
      definitionList([
        ["Task", taskLabel(ep.task)],
        ["Type", ep.endpoint_type || "—"],
        ["Traffic", trafficText(ep)],
        ["AI Gateway", gatewaySummary(ep.ai_gateway)],
        ["Tags", (ep.tags || []).map((t) => (t.value ? `${t.key}=${t.value}` : t.key)).join(", ") || "—"],
        ["Created by", ep.creator || "—"],
        ["Config version", String(ep.config?.config_version ?? "—")],
      ]),
      h("h2", { id: "entities-title" }, "Served entities"),
      scrollable(h(
        "table",
        { class: "grid", "aria-labelledby": "entities-title" },
        h("thead", {}, h("tr", {}, ["Name", "Model", "Task", "State"].map((t) => h("th", { scope: "col" }, t)))),
        h(
          "tbody",
          {},
          entities.map((e) =>
            h(
              "tr",
              {},
              h("td", {}, e.name),
              h("td", {}, entityModel(e)),
              h("td", {}, taskLabel(e.external_model?.task || ep.task)),
              h("td", {}, [e.state?.deployment || "—", e.state?.deployment_state_message ? ` — ${e.state.deployment_state_message}` : ""]),
            ),
          ),
        ),
      ), "Served entities table"),
      h(
        "details",
        {},
        h("summary", {}, "Endpoint JSON (as GET /api/2.0/serving-endpoints/", name, " returns it)"),
        h("pre", { class: "code" }, pretty(ep)),
      ),
    ),
  );
  if (ep.ai_gateway?.inference_table_config?.enabled) {
    root.append(
      h("p", { class: "hint" }, "Recent requests appear here once the server's inference table reader is available."),
    );
  }
  renderQueryPanel(root, ep);
}
