// The curl command that makes the same request as the page: POST /api/run,
// answered with the run's event stream (Accept: text/event-stream).

import { apiKey, apiUrl } from "./api.js";

/** Quote `text` for a POSIX shell. */
function quote(text) {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

/** The command for `body` ({workflow, inputs}) and the chosen `files` ({name: File}). */
export function curlCommand(body, files) {
  const lines = [`curl -N -X POST ${quote(apiUrl("run"))}`, `-H 'Accept: text/event-stream'`];
  // The key itself never goes into text meant to be copied and pasted.
  if (apiKey()) lines.push(`-H "Authorization: Bearer $COMFYSYNC_API_KEY"`);
  const names = Object.keys(files);
  if (names.length) {
    // --form-string takes the JSON literally (-F would read ';' and '<' in it).
    lines.push(`--form-string ${quote(`payload=${JSON.stringify(body)}`)}`);
    for (const name of names) lines.push(`-F ${quote(`${name}=@${files[name].name}`)}`);
  } else {
    lines.push(`-H 'Content-Type: application/json'`, `-d ${quote(JSON.stringify(body))}`);
  }
  return lines.join(" \\\n  ");
}
