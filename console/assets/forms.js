// Forms generated from JSON Schemas (an agent type's config_schema, a
// workflow's parameters, the input a paused run waits for). Each property
// gets a labelled control with its description as a hint and a place for
// its field error, linked with aria-describedby.

import { h, id } from "./dom.js";

/**
 * field makes a labelled control with a hint and an error slot.
 * Returns {row, control, error, setError(msg)}.
 */
export function field(label, control, hint) {
  const cid = control.id || id("f");
  control.id = cid;
  const err = h("p", { class: "field-error", id: `${cid}-error`, hidden: true });
  const described = [`${cid}-error`];
  let hintEl = null;
  if (hint) {
    hintEl = h("p", { class: "hint", id: `${cid}-hint` }, hint);
    described.unshift(`${cid}-hint`);
  }
  control.setAttribute("aria-describedby", described.join(" "));
  const row = h("div", { class: "field" }, h("label", { for: cid }, label), control, hintEl, err);
  const setError = (msg) => {
    err.textContent = msg || "";
    err.hidden = !msg;
    if (msg) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  };
  return { row, control, error: err, setError };
}

function typeOf(prop) {
  let t = prop.type;
  if (Array.isArray(t)) t = t.find((x) => x !== "null") || "string";
  if (!t && prop.enum) t = typeof prop.enum[0] === "number" ? "number" : "string";
  return t || "json";
}

/**
 * schemaForm builds controls for the properties of an object schema.
 * values are the current values. Returns {element, read(), setErrors(errs),
 * clearErrors(), fields} where read() returns {value, errors}: value is the
 * object of the filled-in properties, errors what could not be read
 * (a number that is not one, JSON that does not parse).
 */
export function schemaForm(schema, values = {}, { legend } = {}) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const fields = {};
  const box = h("fieldset", { class: "schema-form" });
  if (legend) box.append(h("legend", {}, legend));
  const names = Object.keys(props);
  if (names.length === 0 && schema && schema.type === "object" && schema.additionalProperties !== false) {
    // An open object: one JSON field for the whole value.
    const f = field("Value (JSON)", h("textarea", { rows: 4, spellcheck: "false" }), "a JSON object");
    f.control.value = JSON.stringify(values ?? {}, null, 2);
    fields[""] = { ...f, type: "json" };
    box.append(f.row);
  }
  if (names.length === 0 && !fields[""]) box.append(h("p", { class: "hint" }, "No settings."));
  for (const name of names) {
    const prop = props[name] || {};
    const type = typeOf(prop);
    const v = values?.[name];
    let control;
    const hintParts = [];
    if (prop.description) hintParts.push(prop.description.replace(/\.$/, ""));
    if (prop.default !== undefined) hintParts.push(`default ${JSON.stringify(prop.default)}`);
    if (prop.minimum !== undefined) hintParts.push(`at least ${prop.minimum}`);
    if (prop.maximum !== undefined) hintParts.push(`at most ${prop.maximum}`);
    if (prop.enum) {
      control = h("select", {});
      if (!required.has(name)) control.append(h("option", { value: "" }, "(default)"));
      for (const opt of prop.enum) control.append(h("option", { value: String(opt) }, String(opt)));
      control.value = v === undefined ? "" : String(v);
    } else if (type === "boolean") {
      control = h("select", {});
      const none = required.has(name) ? "(choose)" : "(default)";
      for (const [val, label] of [["", none], ["true", "yes"], ["false", "no"]]) control.append(h("option", { value: val }, label));
      control.value = v === undefined ? "" : String(v);
    } else if (type === "integer" || type === "number") {
      // A text box, so whatever is typed reaches the server's validation and
      // its field error shows next to this field.
      control = h("input", { type: "text", inputmode: type === "integer" ? "numeric" : "decimal", autocomplete: "off" });
      control.value = v === undefined ? "" : String(v);
    } else if (type === "string") {
      const long = /text|data|message|request|question|instructions|prompt|content/i.test(name);
      control = long ? h("textarea", { rows: 3 }) : h("input", { type: "text", autocomplete: "off" });
      control.value = v ?? "";
    } else if (type === "array" && typeOf(prop.items || {}) === "string") {
      control = h("textarea", { rows: 3 });
      hintParts.unshift("one per line");
      control.value = Array.isArray(v) ? v.join("\n") : "";
    } else {
      control = h("textarea", { rows: 3, spellcheck: "false" });
      hintParts.unshift("JSON");
      control.value = v === undefined ? "" : JSON.stringify(v, null, 2);
    }
    if (required.has(name)) control.setAttribute("aria-required", "true");
    control.name = name;
    const f = field(required.has(name) ? `${name} (required)` : name, control, hintParts.join("; "));
    fields[name] = { ...f, type: prop.enum ? "enum" : type, prop };
    box.append(f.row);
  }
  const clearErrors = () => Object.values(fields).forEach((f) => f.setError(""));
  const read = () => {
    const value = {};
    const errors = [];
    if (fields[""]) {
      try {
        return { value: JSON.parse(fields[""].control.value || "{}"), errors };
      } catch {
        errors.push({ field: "", message: "is not valid JSON" });
        return { value, errors };
      }
    }
    for (const [name, f] of Object.entries(fields)) {
      const raw = f.control.value;
      if (raw === "" || raw === undefined) continue;
      if (f.type === "enum") {
        const opt = (f.prop.enum || []).find((o) => String(o) === raw);
        value[name] = opt === undefined ? raw : opt;
      } else if (f.type === "boolean") value[name] = raw === "true";
      else if (f.type === "integer" || f.type === "number") {
        const n = Number(raw.trim());
        if (raw.trim() === "" || Number.isNaN(n)) errors.push({ field: name, message: "must be a number" });
        else if (f.type === "integer" && !Number.isInteger(n)) errors.push({ field: name, message: "must be a whole number" });
        else value[name] = n;
      } else if (f.type === "string") value[name] = raw;
      else if (f.type === "array" && f.control.tagName === "TEXTAREA" && typeOf(f.prop.items || {}) === "string")
        value[name] = raw.split("\n").map((s) => s.trim()).filter(Boolean);
      else {
        try {
          value[name] = JSON.parse(raw);
        } catch {
          errors.push({ field: name, message: "is not valid JSON" });
        }
      }
    }
    return { value, errors };
  };
  const setErrors = (errs) => {
    let shown = 0;
    for (const e of errs) {
      const f = fields[e.field] || placeByMessage(fields, e.message);
      if (f) {
        f.setError(e.message);
        shown += 1;
      }
    }
    return shown;
  };
  return { element: box, read, setErrors, clearErrors, fields };
}

// placeByMessage finds the field a message such as "agenttype: invalid
// agent configuration: temperature: must be at most 2" is about.
function placeByMessage(fields, message) {
  for (const [name, f] of Object.entries(fields)) {
    if (name && new RegExp(`(^|[\\s:.])${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(:|\\s)`).test(message || "")) return f;
  }
  return null;
}
