// A run's live events (GET /api/status/<id>/events) read as Server-Sent Events.
// EventSource cannot send an Authorization header, so the stream is read with
// fetch; a dropped connection resumes after the last event seen (Last-Event-ID).

import { ApiError, apiUrl, authHeaders } from "./api.js";

export const FINAL_EVENTS = new Set(["succeeded", "failed", "cancelled"]);

const RETRY_LIMIT = 5;

/** Parse one SSE block (the lines between blank lines); null for a comment or heartbeat. */
function parseBlock(block) {
  const event = { id: null, type: "message", data: "" };
  let hasData = false;
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "id") event.id = value;
    else if (name === "event") event.type = value;
    else if (name === "data") {
      event.data += (hasData ? "\n" : "") + value;
      hasData = true;
    }
  }
  if (!hasData) return null;
  try {
    event.data = JSON.parse(event.data);
  } catch {
    // not JSON: keep the text
  }
  return event;
}

async function readOnce(runId, lastId, onEvent, signal) {
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (lastId !== null) headers["Last-Event-ID"] = lastId;
  const response = await fetch(apiUrl(`status/${encodeURIComponent(runId)}/events`), {
    headers,
    signal,
    cache: "no-store",
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, body);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = lastId;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { last, final: false };
    buffer += value.replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = parseBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
      if (event === null) continue;
      if (event.id !== null) last = event.id;
      onEvent(event);
      if (FINAL_EVENTS.has(event.type)) {
        reader.cancel().catch(() => {});
        return { last, final: true };
      }
    }
  }
}

/**
 * Call `onEvent` for each of the run's events until it ends (or `signal` aborts).
 * Resolves with the final event's type; throws ApiError when the gateway refuses.
 */
export async function watchEvents(runId, onEvent, signal) {
  let lastId = null;
  let failures = 0;
  let finalType = null;
  const seen = (event) => {
    if (FINAL_EVENTS.has(event.type)) finalType = event.type;
    onEvent(event);
  };
  while (!signal.aborted) {
    try {
      const { last, final } = await readOnce(runId, lastId, seen, signal);
      if (final) return finalType;
      // Closed before the end: a stream that moved on earns a fresh set of tries.
      failures = last !== lastId ? 0 : failures + 1;
      lastId = last;
      if (failures > RETRY_LIMIT) throw new Error("the event stream keeps closing");
    } catch (err) {
      if (signal.aborted || err instanceof ApiError) throw err;
      failures += 1;
      if (failures > RETRY_LIMIT) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** failures));
  }
  return null;
}
