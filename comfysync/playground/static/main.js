// The playground: pick a workflow, fill its form, run it, watch it, see its images.

import { ApiError, apiKey, call, describe, setApiKey } from "./api.js";
import { curlCommand } from "./curl.js";
import { watchEvents } from "./events.js";
import { buildForm, clearErrors, collectInputs, showErrors } from "./form.js";
import { firstImage, loadHistory } from "./history.js";

const WORKFLOW_STORAGE = "comfysync.workflow";
const $ = (id) => document.getElementById(id);

let parameters = [];
let watching = null; // the AbortController of the run being watched

function notice(text) {
  $("notice").textContent = text || "";
  $("notice").hidden = !text;
}

function formError(text) {
  $("form-error").textContent = text || "";
  $("form-error").hidden = !text;
}

async function loadSchema(name) {
  clearErrors($("fields"));
  formError("");
  const schema = await call(`workflows/${encodeURIComponent(name)}`, { exact: true });
  parameters = schema.parameters;
  $("workflow-description").textContent = schema.description || "";
  buildForm($("fields"), parameters);
  $("fields").dataset.workflow = name; // which workflow the fields belong to
}

async function loadWorkflows() {
  const select = $("workflow");
  let names;
  try {
    ({ workflows: names } = await call("workflows"));
  } catch (err) {
    select.replaceChildren();
    $("fields").replaceChildren();
    $("run-button").disabled = true;
    notice(describe(err));
    return;
  }
  notice(names.length ? "" : "No workflows are stored on this gateway.");
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  const remembered = localStorage.getItem(WORKFLOW_STORAGE);
  if (names.includes(remembered)) select.value = remembered;
  $("run-button").disabled = names.length === 0;
  if (names.length) await loadSchema(select.value).catch((err) => notice(describe(err)));
}

async function refreshHistory() {
  try {
    await loadHistory($("history"), openRun);
    $("history-note").hidden = true;
  } catch (err) {
    $("history").replaceChildren();
    $("history-note").textContent = describe(err);
    $("history-note").hidden = false;
  }
}

// --- one run ---------------------------------------------------------------

const STATUS_WORDS = {
  queued: "queued",
  started: "running",
  progress: "running",
  executed: "running",
  uploading: "uploading",
  succeeded: "success",
  failed: "failed",
  cancelled: "cancelled",
};

function setStatus(text) {
  $("run-status").textContent = text;
  $("result-panel").dataset.status = text;
}

function showProgress(data) {
  const total = data.nodes_total || 0;
  if (!total) return;
  const within = data.max ? Math.min(1, data.value / data.max) : 0;
  $("progress").value = Math.min(1, (data.nodes_done + within) / total);
  const step = data.max > 1 ? ` step ${data.value} of ${data.max}` : "";
  $("progress-text").textContent =
    `${data.node_type || `node ${data.node}`}${step} · node ${data.nodes_done + 1} of ${total}`;
}

function logEvent(event) {
  const line = document.createElement("li");
  line.textContent = `#${event.id ?? "?"} ${event.type} ${JSON.stringify(event.data)}`;
  $("event-log").querySelector("ul").append(line);
}

function onEvent(event) {
  logEvent(event);
  setStatus(STATUS_WORDS[event.type] || event.type);
  if (event.type === "queued" && event.data.position !== undefined) {
    $("progress-text").textContent = `In the queue at position ${event.data.position}`;
  }
  if (event.type === "progress") showProgress(event.data);
}

function showTimings(record) {
  const rows = [];
  for (const [phase, ms] of Object.entries(record.timings || {})) rows.push([phase, `${ms} ms`]);
  if (record.execution_time !== undefined && record.execution_time !== null) {
    rows.push(["ComfyUI execution", `${record.execution_time} s`]);
  }
  if (record.duration !== null && record.duration !== undefined) {
    rows.push(["run, start to end", `${record.duration} s`]);
  }
  const body = $("timings").querySelector("tbody");
  body.replaceChildren(
    ...rows.map(([name, value]) => {
      const row = document.createElement("tr");
      row.append(Object.assign(document.createElement("th"), { textContent: name }));
      row.append(Object.assign(document.createElement("td"), { textContent: value }));
      return row;
    }),
  );
  $("timings").hidden = rows.length === 0;
}

function showImages(record) {
  const images = (record.images || []).filter((image) => image.url);
  if (!images.length && firstImage(record)) images.push({ url: firstImage(record) });
  $("images").replaceChildren(
    ...images.map((image, index) => {
      const link = Object.assign(document.createElement("a"), { href: image.url, target: "_blank" });
      link.rel = "noopener";
      const img = Object.assign(document.createElement("img"), {
        src: image.url,
        alt: `Output image ${index + 1}`,
      });
      link.append(img);
      return link;
    }),
  );
}

/** Show the run record: its status, error, images and timings. */
function showRecord(record) {
  setStatus(record.status);
  const error = record.error_details || (record.error ? { error: record.error } : null);
  $("run-error").textContent = error ? `${error.error}${error.error_type ? ` (${error.error_type})` : ""}` : "";
  $("run-error").hidden = !error;
  if (record.status === "success") {
    $("progress").value = 1;
    $("progress-text").textContent = "Done";
  }
  showImages(record);
  showTimings(record);
}

function resetRun(runId, curl) {
  if (watching) watching.abort();
  watching = new AbortController();
  $("result-panel").hidden = false;
  $("run-id").textContent = runId;
  setStatus("…");
  $("progress").value = 0;
  $("progress-text").textContent = "";
  $("run-error").hidden = true;
  $("images").replaceChildren();
  $("timings").hidden = true;
  $("event-log").querySelector("ul").replaceChildren();
  $("curl").textContent = curl || "";
  $("curl").hidden = !curl;
  $("curl").previousElementSibling.hidden = !curl;
  return watching.signal;
}

/** Follow the run's events to its end, then show its record. */
async function follow(runId, signal) {
  try {
    await watchEvents(runId, onEvent, signal);
    if (signal.aborted) return;
    showRecord(await call(`status/${encodeURIComponent(runId)}`, { signal }));
  } catch (err) {
    if (signal.aborted) return;
    $("run-error").textContent = describe(err);
    $("run-error").hidden = false;
  }
  refreshHistory();
}

/** Open a run from the history: its record, and its events while it goes on. */
async function openRun(runId) {
  const signal = resetRun(runId, "");
  try {
    const record = await call(`status/${encodeURIComponent(runId)}`, { signal });
    showRecord(record);
    if (!["success", "failed", "cancelled"].includes(record.status)) await follow(runId, signal);
  } catch (err) {
    if (!signal.aborted) notice(describe(err));
  }
}

async function submit(event) {
  event.preventDefault();
  const fields = $("fields");
  clearErrors(fields);
  formError("");
  notice("");
  const workflow = $("workflow").value;
  const { inputs, files } = collectInputs(fields, parameters);
  const body = { workflow, inputs };
  let request = { method: "POST", json: body };
  if (Object.keys(files).length) {
    const form = new FormData();
    form.append("payload", JSON.stringify(body));
    for (const [name, file] of Object.entries(files)) form.append(name, file, file.name);
    request = { method: "POST", form };
  }
  $("run-button").disabled = true;
  let runId;
  try {
    ({ run_id: runId } = await call("run", request));
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) {
      const reported = err.body.fields || (err.body.field ? [{ name: err.body.field, reason: err.body.error }] : []);
      const unplaced = showErrors(fields, reported);
      const rest = unplaced.map((e) => `${e.name}: ${e.reason}`).join("; ");
      if (!reported.length || rest) formError(rest ? `${err.message}: ${rest}` : err.message);
    } else {
      formError(describe(err));
    }
    return;
  } finally {
    $("run-button").disabled = false;
  }
  const signal = resetRun(runId, curlCommand(body, files));
  refreshHistory();
  await follow(runId, signal);
}

function start() {
  const key = $("api-key");
  key.value = apiKey();
  key.addEventListener("change", () => {
    setApiKey(key.value.trim());
    loadWorkflows();
    refreshHistory();
  });
  $("workflow").addEventListener("change", () => {
    localStorage.setItem(WORKFLOW_STORAGE, $("workflow").value);
    loadSchema($("workflow").value).catch((err) => notice(describe(err)));
  });
  $("run-form").addEventListener("submit", submit);
  $("history-refresh").addEventListener("click", refreshHistory);
  loadWorkflows();
  refreshHistory();
}

start();
