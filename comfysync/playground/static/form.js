// The run form, built from a workflow's schema (GET /api/workflows/<name>).
// The page checks nothing itself: the gateway converts and checks every value,
// and its 400 names each bad field, shown beside that field.

const SEED_NAME = /(^|_)seed$/;
// Random seeds stay exact in JavaScript numbers (and in the JSON sent).
const SEED_CEILING = Number.MAX_SAFE_INTEGER;
const WHOLE = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

/** The accepted values, as the gateway words them in its errors. */
function bounds(param) {
  const kind = param.type === "int" ? "integer" : "number";
  if (param.min !== null && param.max !== null) return `${kind} from ${param.min} to ${param.max}`;
  if (param.min !== null) return `${kind} ≥ ${param.min}`;
  if (param.max !== null) return `${kind} ≤ ${param.max}`;
  return kind;
}

function isSeed(param) {
  return param.type === "int" && SEED_NAME.test(param.name);
}

/** A random whole number within the seed's bounds (below 2^53). */
export function randomSeed(param) {
  const low = Math.max(0, Number(param.min ?? 0));
  const high = Math.min(SEED_CEILING, Number(param.max ?? SEED_CEILING));
  const words = crypto.getRandomValues(new Uint32Array(2));
  const fraction = (words[0] * 2 ** 21 + (words[1] >>> 11)) / 2 ** 53;
  return low + Math.floor(fraction * (high - low + 1));
}

function textControl(param, id) {
  const long = param.type === "string" && /prompt|text/.test(param.name);
  const control = long ? element("textarea", { rows: "3" }) : element("input", { type: "text" });
  if (param.type === "int") control.setAttribute("inputmode", "numeric");
  if (param.type === "float") control.setAttribute("inputmode", "decimal");
  control.id = id;
  control.name = param.name;
  if (param.default !== null) control.value = String(param.default);
  return control;
}

function enumControl(param, id) {
  const select = element("select", { id, name: param.name });
  if (param.default === null) select.append(element("option", { value: "" }, "(the workflow's own)"));
  param.choices.forEach((choice, index) => {
    const option = element("option", { value: String(index) }, String(choice));
    if (choice === param.default) option.selected = true;
    select.append(option);
  });
  return select;
}

function boolControl(param, id) {
  const box = element("input", { type: "checkbox", id, name: param.name });
  box.checked = param.default === true;
  return box;
}

function imageControls(param, id) {
  const file = element("input", { type: "file", id, name: param.name, accept: "image/*" });
  const url = element("input", {
    type: "text",
    name: `${param.name}-url`,
    "aria-label": `${param.display_name} URL`,
    placeholder: "or a URL, a data: URL, or a file in ComfyUI's input folder",
  });
  const preview = element("img", { class: "preview", alt: "", hidden: "" });
  file.addEventListener("change", () => {
    if (preview.src) URL.revokeObjectURL(preview.src);
    const chosen = file.files[0];
    preview.hidden = !chosen;
    if (chosen) preview.src = URL.createObjectURL(chosen);
  });
  return [file, url, preview];
}

/** One field: label, control(s), hint, and a place for the gateway's error. */
function buildField(param) {
  const id = `field-${param.name}`;
  const field = element("div", { class: "field", "data-name": param.name });
  const label = element("label", { for: id }, param.display_name || param.name);
  if (param.required) label.append(element("span", { class: "required" }, " (required)"));
  field.append(label);
  const row = element("div", { class: "controls" });
  if (param.type === "enum") row.append(enumControl(param, id));
  else if (param.type === "bool") row.append(boolControl(param, id));
  else if (param.type === "image") row.append(...imageControls(param, id));
  else row.append(textControl(param, id));
  if (isSeed(param)) {
    const dice = element("button", { type: "button", class: "dice", title: "A random seed" }, "Random");
    dice.setAttribute("aria-label", `Random ${param.name}`);
    dice.addEventListener("click", () => {
      row.querySelector("input").value = String(randomSeed(param));
    });
    row.append(dice);
  }
  field.append(row);
  const hints = [];
  if (param.type === "int" || param.type === "float") hints.push(bounds(param));
  if (param.description) hints.push(param.description);
  if (hints.length) field.append(element("small", { class: "hint" }, hints.join(" · ")));
  field.append(element("p", { class: "error field-error", role: "alert", hidden: "" }));
  return field;
}

/** Fill `container` with one field per parameter. */
export function buildForm(container, parameters) {
  container.replaceChildren(...parameters.map(buildField));
}

function numberValue(text, param) {
  const pattern = param.type === "int" ? WHOLE : DECIMAL;
  const number = Number(text);
  // Anything else goes as typed ("0xff8800", "abc"): the gateway converts or refuses it.
  if (!pattern.test(text) || !Number.isFinite(number)) return text;
  if (param.type === "int" && !Number.isSafeInteger(number)) return text;
  return number;
}

/**
 * The inputs the user set, and any chosen files by parameter name.
 * A field left at its default is not sent: the workflow's own value holds.
 */
export function collectInputs(container, parameters) {
  const inputs = {};
  const files = {};
  for (const param of parameters) {
    const field = container.querySelector(`.field[data-name="${CSS.escape(param.name)}"]`);
    const control = field.querySelector(`[name="${CSS.escape(param.name)}"]`);
    if (param.type === "image") {
      const url = field.querySelector(`[name="${CSS.escape(`${param.name}-url`)}"]`).value.trim();
      if (control.files.length) files[param.name] = control.files[0];
      else if (url) inputs[param.name] = url;
    } else if (param.type === "bool") {
      if (control.checked !== (param.default === true) || param.required) {
        inputs[param.name] = control.checked;
      }
    } else if (param.type === "enum") {
      if (control.value !== "") {
        const choice = param.choices[Number(control.value)];
        if (choice !== param.default || param.required) inputs[param.name] = choice;
      }
    } else {
      const text = param.type === "string" ? control.value : control.value.trim();
      const shown = param.default === null ? "" : String(param.default);
      if (text === shown && !param.required) continue;
      // Emptied: a number goes unset, and a required field is reported missing by the gateway.
      if (text === "" && (param.type !== "string" || param.required)) continue;
      inputs[param.name] = param.type === "string" ? text : numberValue(text, param);
    }
  }
  return { inputs, files };
}

/** Clear every field's error. */
export function clearErrors(container) {
  for (const field of container.querySelectorAll(".field")) {
    field.classList.remove("invalid");
    const message = field.querySelector(".field-error");
    message.hidden = true;
    message.textContent = "";
    for (const control of field.querySelectorAll("input, select, textarea")) {
      control.removeAttribute("aria-invalid");
    }
  }
}

/**
 * Show each `{name, reason, expected}` of a 400 beside its field.
 * Returns the errors that name no field of this form.
 */
export function showErrors(container, errors) {
  const unplaced = [];
  for (const error of errors) {
    const field = error.name
      ? container.querySelector(`.field[data-name="${CSS.escape(error.name)}"]`)
      : null;
    if (!field) {
      unplaced.push(error);
      continue;
    }
    field.classList.add("invalid");
    const message = field.querySelector(".field-error");
    message.textContent = error.expected ? `${error.reason} (expected ${error.expected})` : error.reason;
    message.hidden = false;
    for (const control of field.querySelectorAll("input, select, textarea")) {
      control.setAttribute("aria-invalid", "true");
    }
  }
  const first = container.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
  if (first) first.focus();
  return unplaced;
}
