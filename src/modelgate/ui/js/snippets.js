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

function contentText(content) {
  return typeof content === "string" ? content : (content || []).filter((p) => p.type === "text").map((p) => p.text).join(" ");
}

/** ai_query takes the request text; the other fields become modelParameters. A chat request's other messages
 * (its system message, earlier turns) have no place in ai_query's one prompt: a comment says they are left out. */
export function sqlSnippet(endpoint, task, body) {
  const notes = [];
  let request = "";
  if (task === "llm/v1/embeddings") request = [].concat(body.input ?? "")[0] ?? "";
  else if (task === "llm/v1/completions") request = [].concat(body.prompt ?? "")[0] ?? "";
  else {
    const messages = body.messages || [];
    const users = messages.filter((m) => m.role === "user");
    request = users.length ? contentText(users[users.length - 1].content) : "";
    const system = messages.filter((m) => m.role === "system" || m.role === "developer");
    const earlier = messages.length - system.length - (users.length ? 1 : 0);
    if (system.length) {
      notes.push("-- ai_query sends one prompt per row: this request's system message is not sent (write it into the prompt to keep it):");
      for (const m of system) notes.push(...contentText(m.content).split("\n").map((line) => `--   ${line}`));
    }
    if (earlier > 0) notes.push(`-- nor ${earlier === 1 ? "is the earlier message" : `are the ${earlier} earlier messages`}: only the last user message is.`);
  }
  const params = ["max_tokens", "temperature", "top_p", "top_k"]
    .filter((k) => typeof body[k] === "number")
    .map((k) => `'${k}', ${body[k]}`);
  const lines = [...notes, `SELECT ai_query(`, `  ${sqlString(endpoint)},`, `  ${sqlString(request)}`];
  if (params.length) {
    lines[lines.length - 1] += ",";
    lines.push(`  modelParameters => named_struct(${params.join(", ")})`);
  }
  lines.push(") AS response");
  return lines.join("\n");
}
