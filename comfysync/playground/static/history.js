// Recent runs (GET /api/runs): newest first, each with a thumbnail of its first image.
// The gateway keeps the list, so runs started elsewhere (curl, the client) show too.

import { call } from "./api.js";

const SHOWN = 12;

/** The first output image's URL of a run record, if any. */
export function firstImage(record) {
  if (record.images && record.images.length) return record.images[0].url;
  for (const output of record.outputs || []) {
    if (output.images && output.images.length) return output.images[0].url;
  }
  return null;
}

function entry(record, onOpen) {
  const item = document.createElement("li");
  item.className = `run ${record.status}`;
  item.dataset.runId = record.run_id;
  const button = document.createElement("button");
  button.type = "button";
  const url = firstImage(record);
  if (url) {
    const thumb = document.createElement("img");
    thumb.className = "thumb";
    thumb.src = url;
    thumb.alt = `Output of run ${record.run_id}`;
    thumb.loading = "lazy";
    button.append(thumb);
  }
  const text = document.createElement("span");
  const when = record.created_at ? new Date(record.created_at).toLocaleString() : "";
  const took = record.duration !== null && record.duration !== undefined ? ` · ${record.duration} s` : "";
  text.textContent = `${record.status} · ${when}${took}`;
  button.append(text);
  button.addEventListener("click", () => onOpen(record.run_id));
  item.append(button);
  return item;
}

/** Fill `list` with the recent runs; `onOpen(runId)` when one is clicked. */
export async function loadHistory(list, onOpen) {
  const { runs } = await call(`runs?limit=${SHOWN}`);
  list.replaceChildren(...runs.map((record) => entry(record, onOpen)));
  return runs;
}
