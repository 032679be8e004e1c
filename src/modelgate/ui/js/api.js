// Calls to modelgate's REST API with the session token; errors become ApiError with a readable message.

import { getToken } from "./session.js";

export class ApiError extends Error {
  constructor(status, errorCode, serverMessage) {
    super(describe(status, errorCode, serverMessage));
    this.status = status;
    this.errorCode = errorCode;
    this.serverMessage = serverMessage;
  }
}

/** Human wording for the statuses a person can act on; the server's own message is kept. */
function describe(status, errorCode, serverMessage) {
  const code = errorCode ? ` ${errorCode}` : "";
  if (status === 401) {
    return `Your token was not accepted (401${code}): ${serverMessage} Sign out and sign in with a valid token.`;
  }
  if (status === 403) return `You are not allowed to do this (403${code}): ${serverMessage}`;
  if (status === 0) return `Could not reach the server: ${serverMessage}`;
  return `${status}${code}: ${serverMessage}`;
}

export function authHeaders(token = getToken()) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorFrom(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return new ApiError(response.status, body.error_code || "", body.message || text);
  } catch {
    return new ApiError(response.status, "", text || response.statusText);
  }
}

/** fetch with the token; throws ApiError for non-2xx and for network failures. */
export async function send(method, path, body, { token, signal, headers } = {}) {
  const init = { method, headers: { ...authHeaders(token), ...(headers || {}) }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "", err.message);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson(path, opts) {
  return (await send("GET", path, undefined, opts)).json();
}

export async function sendJson(method, path, body, opts) {
  const text = await (await send(method, path, body, opts)).text();
  return text ? JSON.parse(text) : {};
}

export const endpointsApi = {
  list: async () => (await getJson("/api/2.0/serving-endpoints")).endpoints || [],
  get: (name) => getJson(`/api/2.0/serving-endpoints/${encodeURIComponent(name)}`),
  create: (body) => sendJson("POST", "/api/2.0/serving-endpoints", body),
  updateConfig: (name, body) => sendJson("PUT", `/api/2.0/serving-endpoints/${encodeURIComponent(name)}/config`, body),
  putAiGateway: (name, body) =>
    sendJson("PUT", `/api/2.0/serving-endpoints/${encodeURIComponent(name)}/ai-gateway`, body),
  remove: (name) => sendJson("DELETE", `/api/2.0/serving-endpoints/${encodeURIComponent(name)}`),
  metrics: async (name) =>
    (await send("GET", `/api/2.0/serving-endpoints/${encodeURIComponent(name)}/metrics`)).text(),
  usage: (name) =>
    getJson(`/api/2.0/serving-endpoints/${encodeURIComponent(name)}/usage?hours=24&bucket_minutes=5`),
  invocationsPath: (name) => `/serving-endpoints/${encodeURIComponent(name)}/invocations`,
};

export const whoAmI = (token) => getJson("/api/2.0/preview/scim/v2/Me", { token });
