// Agents: the list (yours and the built-ins), create and edit with a form
// generated from the agent type's config schema (GET /api/v1/agents/types),
// field errors next to their fields, and delete.

import * as client from "./api.js";
import { h, clear, alertError, announce, describe, when } from "./dom.js";
import { field, schemaForm } from "./forms.js";

export async function agentsView(root, c) {
  document.title = "Agents · kowai console";
  const [typesView, page, modelsView] = await Promise.all([
    client.api("GET", "/api/v1/agents/types"),
    client.api("GET", "/api/v1/agents?limit=200"),
    // A node without a model catalog answers 404: the field is then free text.
    client.api("GET", "/api/v1/models").catch((err) => {
      if (err instanceof client.ApiError && err.status === 404) return null;
      throw err;
    }),
  ]);
  const types = typesView.types;
  const models = modelsView ? modelsView.models : null;
  const create = h("button", { type: "button", class: "primary" }, "Create agent");
  const editor = h("div", { class: "editor" });
  const rows = h("tbody");
  root.append(
    h("h1", {}, "Agents"),
    h("p", {}, create),
    editor,
    h(
      "section",
      { class: "card" },
      h(
        "table",
        {},
        h("caption", {}, "Your agents and the built-in ones"),
        h("thead", {}, h("tr", {}, ["Name", "Type", "Owner", "Version", "Updated", "Statistics", ""].map((t) => h("th", { scope: "col" }, t)))),
        rows,
      ),
    ),
  );

  function list(agents) {
    clear(rows);
    for (const a of agents) {
      const mine = a.owner_id && (a.owner_id === c.me.id || c.isAdmin);
      const actions = h("td", { class: "actions" });
      if (mine) {
        const edit = h("button", { type: "button", "aria-label": `Edit ${a.name}` }, "Edit");
        edit.addEventListener("click", () => open(a));
        const del = h("button", { type: "button", "aria-label": `Delete ${a.name}` }, "Delete");
        del.addEventListener("click", () => confirmDelete(a, del));
        actions.append(edit, " ", del);
      }
      rows.append(
        h(
          "tr",
          {},
          h("th", { scope: "row" }, a.name),
          h("td", {}, a.type),
          h("td", {}, a.owner_id ? (a.owner_id === c.me.id ? "you" : a.owner_id) : "built-in"),
          h("td", {}, String(a.version)),
          h("td", {}, when(a.updated_at)),
          h("td", { class: "hint" }, "not offered by the API"),
          actions,
        ),
      );
    }
  }

  async function reload() {
    list((await client.api("GET", "/api/v1/agents?limit=200")).agents);
  }

  function confirmDelete(a, btn) {
    const sure = h("button", { type: "button", class: "danger" }, `Confirm delete ${a.name}`);
    const keep = h("button", { type: "button" }, "Keep it");
    const box = h("span", { class: "confirm" }, sure, " ", keep);
    btn.replaceWith(box);
    sure.focus();
    keep.addEventListener("click", () => box.replaceWith(btn));
    sure.addEventListener("click", async () => {
      try {
        await client.api("DELETE", `/api/v1/agents/${encodeURIComponent(a.id)}`);
        announce(`Agent ${a.name} deleted`);
        await reload();
      } catch (err) {
        c.fail(err);
      }
    });
  }

  // open shows the form for a new agent (a undefined) or for editing a.
  function open(a) {
    clear(editor);
    alertError("");
    const heading = h("h2", { id: "agent-form-title" }, a ? `Edit ${a.name}` : "New agent");
    const name = field("Name", h("input", { type: "text", autocomplete: "off" }), "1 to 200 characters, one line");
    name.control.value = a ? a.name : "";
    const type = field("Type", h("select", {}));
    for (const t of types) type.control.append(h("option", { value: t.name }, t.name));
    type.control.value = a ? a.type : types[0]?.name || "";
    const typeHint = h("p", { class: "hint" });
    const instructions = field("Instructions", h("textarea", { rows: 3 }), "empty for the type's instructions");
    instructions.control.value = a ? a.instructions : "";
    const signature = field("Signature", h("input", { type: "text", autocomplete: "off", spellcheck: "false" }), "empty for the type's signature, e.g. message, history -> response");
    signature.control.value = a ? a.signature : "";
    const model = models ? modelField(models, a ? a.model : "") : field("Model", h("input", { type: "text", autocomplete: "off" }), "empty for the node's default model");
    if (!models) model.control.value = a ? a.model : "";
    const configBox = h("div");
    let config = null;
    const showConfig = () => {
      const t = types.find((x) => x.name === type.control.value);
      typeHint.textContent = t ? `${t.description} Signature: ${t.signature}` : "";
      const values = a && a.type === type.control.value ? a.config || {} : {};
      config = schemaForm(t ? t.config_schema : {}, values, { legend: "Configuration" });
      configBox.replaceChildren(config.element);
    };
    type.control.addEventListener("change", showConfig);
    showConfig();
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    const cancel = h("button", { type: "button" }, "Close");
    const form = h(
      "form",
      { class: "card", novalidate: true, "aria-labelledby": "agent-form-title" },
      heading,
      name.row,
      type.row,
      typeHint,
      instructions.row,
      signature.row,
      model.row,
      configBox,
      h("p", {}, save, " ", cancel),
    );
    const top = { name, type, instructions, signature, model };
    cancel.addEventListener("click", () => clear(editor));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      alertError("");
      for (const f of Object.values(top)) f.setError("");
      config.clearErrors();
      const read = config.read();
      if (read.errors.length) {
        config.setErrors(read.errors);
        alertError("Some settings are not valid; see the fields.");
        return;
      }
      const body = {
        name: name.control.value,
        type: type.control.value,
        instructions: instructions.control.value,
        signature: signature.control.value,
        model: model.control.value,
        config: read.value,
      };
      save.disabled = true;
      try {
        if (a) await client.api("PUT", `/api/v1/agents/${encodeURIComponent(a.id)}`, { ...body, version: a.version });
        else await client.api("POST", "/api/v1/agents", body);
        announce(`Agent ${body.name} saved`);
        clear(editor);
        await reload();
      } catch (err) {
        let placed = 0;
        for (const fe of err.fieldErrors || []) {
          if (top[fe.field]) {
            top[fe.field].setError(fe.message);
            placed += 1;
          } else if (fe.field === "config" || fe.field.startsWith("config.")) {
            const inner = { field: fe.field.replace(/^config\.?/, ""), message: fe.message };
            placed += config.setErrors([inner]);
          }
        }
        alertError(placed ? `The agent was not saved: ${describe(err)}` : describe(err));
        const bad = form.querySelector("[aria-invalid=true]");
        if (bad) bad.focus();
      } finally {
        save.disabled = false;
      }
    });
    editor.append(form);
    name.control.focus();
  }

  create.addEventListener("click", () => open());
  list(page.agents);
}

// modelField is a choice among the models GET /api/v1/models offers the
// caller: the node's default first, prices in dollars per 1,000 tokens. An
// agent's model the caller may not choose any more stays selected, marked.
function modelField(models, current) {
  const price = (m) => (m.input_per_1k || m.output_per_1k ? `, $${m.input_per_1k}/$${m.output_per_1k} per 1k tokens in/out` : "");
  const def = models.find((m) => m.default);
  const select = h("select", {}, h("option", { value: "" }, def ? `The node's default (${def.name})` : "The node's default"));
  for (const m of models) select.append(h("option", { value: m.name }, `${m.name}${m.premium ? " (premium)" : ""}${price(m)}`));
  if (current && !models.some((m) => m.name === current)) select.append(h("option", { value: current }, `${current} (not offered to you)`));
  select.value = current || "";
  return field("Model", select, "the models this node serves; premium ones need the premium role");
}
