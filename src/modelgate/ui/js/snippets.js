// The same request as curl, Python (OpenAI client) and SQL (ai_query), for the "Query endpoint" panel.

const OPENAI_CALL = {
  "llm/v1/chat": ["chat.completions", "messages"],
  "llm/v1/completions": ["completions", "prompt"],
  "llm/v1/embeddings": ["embeddings", "input"],
};

function shellQuote(text) {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function sqlString(text) {
  return `'${String(text).replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** Python literal for a JSON value (True/False/None instead of true/false/null). */
export function pyLiteral(value, indent = 0) {
  const pad = " ".repeat(indent);
  const inner = " ".repeat(indent + 4);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => inner + pyLiteral(v, indent + 4)).join(",\n")},\n${pad}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pyLiteral(v, indent + 4)}`).join(",\n")},\n${pad}}`;
}

export function curlSnippet(origin, endpoint, body) {
  return [
    `curl -X POST ${origin}/serving-endpoints/${endpoint}/invocations \\`,
    `  -H "Authorization: Bearer $DATABRICKS_TOKEN" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ].join("\n");
}

export function pythonSnippet(origin, endpoint, task, body) {
  const [call] = OPENAI_CALL[task] || OPENAI_CALL["llm/v1/chat"];
  const args = Object.entries(body)
    .map(([k, v]) => `    ${k}=${pyLiteral(v, 4)},`)
    .join("\n");
  return [
    "import os",
    "from openai import OpenAI",
    "",
    "client = OpenAI(",
    '    api_key=os.environ["DATABRICKS_TOKEN"],',
    `    base_url="${origin}/serving-endpoints",`,
    ")",
    `response = client.${call}.create(`,
    `    model="${endpoint}",`,
    args,
    ")",
    "print(response)",
  ].join("\n");
}

/** ai_query takes the request text; the other fields become modelParameters. */
export function sqlSnippet(endpoint, task, body) {
  let request = "";
  if (task === "llm/v1/embeddings") request = [].concat(body.input ?? "")[0] ?? "";
  else if (task === "llm/v1/completions") request = [].concat(body.prompt ?? "")[0] ?? "";
  else {
    const users = (body.messages || []).filter((m) => m.role === "user");
    const last = users.length ? users[users.length - 1].content : "";
    request = typeof last === "string" ? last : (last || []).filter((p) => p.type === "text").map((p) => p.text).join(" ");
  }
  const params = ["max_tokens", "temperature", "top_p", "top_k"]
    .filter((k) => typeof body[k] === "number")
    .map((k) => `'${k}', ${body[k]}`);
  const lines = [`SELECT ai_query(`, `  ${sqlString(endpoint)},`, `  ${sqlString(request)}`];
  if (params.length) {
    lines[lines.length - 1] += ",";
    lines.push(`  modelParameters => named_struct(${params.join(", ")})`);
  }
  lines.push(") AS response");
  return lines.join("\n");
}
