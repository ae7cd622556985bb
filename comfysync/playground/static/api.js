// Calls to the gateway's /api, with the key the user typed (kept in localStorage).

const KEY_STORAGE = "comfysync.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** Headers every /api call carries: the key, when there is one. */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** An error answer of the gateway: its status and JSON body (`error`, `error_type`, `fields`). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Relative to the page, so a gateway mounted under a path prefix still works. */
export function apiUrl(path) {
  return new URL(`api/${path}`, document.baseURI).href;
}

// Whole numbers past 2^53 (a seed's bound of 2^64 - 1) read as BigInt, digit for digit,
// where the browser shows a reviver the source text; elsewhere they stay rounded numbers.
function exactIntegers(key, value, context) {
  const source = context && context.source;
  if (typeof value === "number" && !Number.isSafeInteger(value) && /^-?\d+$/.test(source || "")) {
    return BigInt(source);
  }
  return value;
}

/**
 * Call /api/<path>, answer its JSON; throws ApiError for any status but 2xx.
 * With `exact`, large whole numbers come back as BigInt (for schemas, never sent back as JSON).
 */
export async function call(path, { method = "GET", json, form, signal, exact = false } = {}) {
  const init = { method, headers: authHeaders({ Accept: "application/json" }), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // the browser writes the multipart boundary itself
  }
  const response = await fetch(apiUrl(path), init);
  const text = await response.text();
  let body = {};
  try {
    body = text ? JSON.parse(text, exact ? exactIntegers : undefined) : {};
  } catch {
    body = { error: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** What to tell the user about an error that is not about one field. */
export function describe(err) {
  if (!(err instanceof ApiError)) return `The gateway could not be reached: ${err.message}`;
  if (err.status === 401) return "This gateway needs an API key: enter it above.";
  if (err.status === 403) return `This key may not do that: ${err.body.error || ""}`;
  if (err.status === 429) return "Too many requests: wait a moment and try again.";
  return err.message;
}
