// Agents: the list (yours and the built-ins), create and edit with a form
// generated from the agent type's config schema (GET /api/v1/agents/types),
// field errors next to their fields, delete, per-variant statistics
// (GET /api/v1/agents/{id}/stats), and compiled programs: the program each
// agent runs, its canary, a deploy of compiled state as a canary
// (POST /api/v1/agents/{id}/programs) and a promotion or rollback by hand.

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
  const stats = h("div", { class: "stats" });
  root.append(
    h("h1", {}, "Agents"),
    h("p", {}, create),
    editor,
    stats,
    h(
      "section",
      { class: "card" },
      h(
        "table",
        {},
        h("caption", {}, "Your agents and the built-in ones"),
        h("thead", {}, h("tr", {}, ["Name", "Type", "Owner", "Version", "Program", "Updated", "Statistics", ""].map((t) => h("th", { scope: "col" }, t)))),
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
        const deploy = h("button", { type: "button", "aria-label": `Deploy a program to ${a.name}` }, "Deploy program");
        deploy.addEventListener("click", () => openDeploy(a));
        actions.append(edit, " ", del, " ", deploy);
      }
      rows.append(
        h(
          "tr",
          {},
          h("th", { scope: "row" }, a.name),
          h("td", {}, a.type),
          h("td", {}, a.owner_id ? (a.owner_id === c.me.id ? "you" : a.owner_id) : "built-in"),
          h("td", {}, String(a.version)),
          programCell(a, mine),
          h("td", {}, when(a.updated_at)),
          statsCell(a),
          actions,
        ),
      );
    }
  }

  // The statistics of an agent: its owner's, and any agent's for moderators
  // and admins (GET /api/v1/agents/{id}/stats answers 403 to anyone else).
  function statsCell(a) {
    if (!((a.owner_id && a.owner_id === c.me.id) || c.isModerator)) {
      return h("td", { class: "hint" }, a.owner_id ? "its owner, moderators and admins" : "moderators and admins");
    }
    const show = h("button", { type: "button", "aria-label": `Statistics of ${a.name}` }, "Show");
    show.addEventListener("click", () => showStats(a).catch((err) => alertError(`No statistics: ${describe(err)}`)));
    return h("td", {}, show);
  }

  async function showStats(a) {
    const s = await client.api("GET", `/api/v1/agents/${encodeURIComponent(a.id)}/stats`);
    const pct = (x) => `${(100 * x).toFixed(1)}%`;
    const rating = (f) =>
      f.mean === null ? "no ratings" : `${f.mean.toFixed(2)} (95% CI ${f.ci_low.toFixed(2)} to ${f.ci_high.toFixed(2)}; ${f.up} up, ${f.down} down)`;
    const body = h("tbody");
    for (const v of s.variants) {
      body.append(
        h(
          "tr",
          {},
          h("th", { scope: "row" }, v.variant || "(no variant)"),
          h("td", {}, String(v.weight)),
          h("td", {}, String(v.turns)),
          h("td", {}, pct(v.error_rate)),
          h("td", {}, `${Math.round(v.latency_p50_ms)} / ${Math.round(v.latency_p95_ms)} ms`),
          h("td", {}, String(v.tokens)),
          h("td", {}, `$${v.cost_usd.toFixed(4)}`),
          h("td", {}, rating(v.feedback)),
        ),
      );
    }
    const cols = ["Variant", "Weight", "Turns", "Errors", "Latency p50 / p95", "Tokens", "Cost", "Mean feedback"];
    clear(stats);
    stats.append(
      h(
        "section",
        { class: "card", "aria-label": `Statistics of ${a.name}` },
        h("h2", {}, `Statistics of ${a.name}`),
        h("p", { class: "hint" }, `Since ${when(s.since)}${s.truncated ? " (the newest 100,000 turns only)" : ""}. Feedback intervals are 95% Wilson score intervals.`),
        h("table", {}, h("thead", {}, h("tr", {}, cols.map((t) => h("th", { scope: "col" }, t)))), body),
      ),
    );
    announce(`Statistics of ${a.name} shown`);
  }

  // programCell tells which program the agent runs (its type's own, or
  // compiled state promoted from a canary) and its canary, if it has one,
  // with the canary's decision by hand for its owner and admins.
  function programCell(a, mine) {
    const cell = h("td", { class: "program" });
    const prog = a.program && a.program.version ? `compiled ${short(a.program.version)}` : "the type's own";
    cell.append(h("span", {}, prog));
    const canary = (a.variants || []).find((v) => v.canary);
    if (!canary) return cell;
    const k = canary.canary;
    cell.append(
      h("br"),
      h(
        "span",
        { class: "canary" },
        `canary ${short(k.version)} at ${k.percent}%, since ${when(k.deployed_at)}; decides after ${k.min_turns} turns` +
          (k.min_ratings ? ` and ${k.min_ratings} ratings` : ""),
      ),
    );
    if (mine) {
      for (const [decision, label] of [
        ["promote", "Promote"],
        ["rollback", "Roll back"],
      ]) {
        const b = h("button", { type: "button", "aria-label": `${label} the canary of ${a.name}` }, label);
        b.addEventListener("click", async () => {
          b.disabled = true;
          try {
            await client.api("POST", `/api/v1/agents/${encodeURIComponent(a.id)}/programs/${decision}`);
            announce(decision === "promote" ? `The canary of ${a.name} is promoted` : `The canary of ${a.name} is rolled back`);
            await reload();
          } catch (err) {
            b.disabled = false;
            c.fail(err);
          }
        });
        cell.append(" ", b);
      }
    }
    return cell;
  }

  // openDeploy shows the form that deploys compiled program state (the JSON
  // file kowai optimize --out writes) to a as a canary. Empty settings take the
  // node's defaults; field errors land next to their fields.
  function openDeploy(a) {
    clear(editor);
    alertError("");
    const heading = h("h2", { id: "deploy-form-title" }, `Deploy a program to ${a.name}`);
    const file = field("Compiled state", h("input", { type: "file", accept: "application/json,.json" }), "the JSON file kowai optimize --out writes");
    const num = (label, hint, step) => field(label, h("input", { type: "number", step, inputmode: "decimal" }), hint);
    const settings = {
      percent: num("Percent", "share of conversations, 1 to 100 (empty: 10)", "1"),
      min_turns: num("Minimum turns", "canary turns before a decision (empty: 100)", "1"),
      min_ratings: num("Minimum ratings", "ratings each side needs before a promotion (empty: 10)", "1"),
      max_error_rate_increase: num("Largest error rate increase", "0 to 1 (empty: 0.05)", "any"),
      max_feedback_drop: num("Largest rating drop", "0 to 2 (empty: 0.2)", "any"),
    };
    const deploy = h("button", { type: "submit", class: "primary" }, "Deploy");
    const close = h("button", { type: "button" }, "Close");
    const form = h(
      "form",
      { class: "card", novalidate: true, "aria-labelledby": "deploy-form-title" },
      heading,
      file.row,
      ...Object.values(settings).map((f) => f.row),
      h("p", {}, deploy, " ", close),
    );
    close.addEventListener("click", () => clear(editor));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      alertError("");
      file.setError("");
      for (const f of Object.values(settings)) f.setError("");
      const chosen = file.control.files[0];
      if (!chosen) {
        file.setError("Choose the compiled state's JSON file.");
        file.control.focus();
        return;
      }
      let state;
      try {
        state = JSON.parse(await chosen.text());
      } catch (err) {
        file.setError(`Not JSON: ${err.message}`);
        file.control.focus();
        return;
      }
      const body = { state, version: a.version };
      for (const [key, f] of Object.entries(settings)) {
        if (f.control.value !== "") body[key] = Number(f.control.value);
      }
      deploy.disabled = true;
      try {
        await client.api("POST", `/api/v1/agents/${encodeURIComponent(a.id)}/programs`, body);
        announce(`A canary of ${a.name} is deployed`);
        clear(editor);
        await reload();
      } catch (err) {
        let placed = 0;
        for (const fe of err.fieldErrors || []) {
          const f = fe.field === "state" || fe.field.startsWith("state.") ? file : settings[fe.field];
          if (f) {
            f.setError(fe.message);
            placed += 1;
          }
        }
        alertError(placed ? `The program was not deployed: ${describe(err)}` : describe(err));
        const bad = form.querySelector("[aria-invalid=true]");
        if (bad) bad.focus();
      } finally {
        deploy.disabled = false;
      }
    });
    editor.append(form);
    file.control.focus();
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

// short is the first 12 hex digits of a program state's content hash
// ("sha256:..."), enough to tell versions apart.
function short(version) {
  return String(version || "").replace(/^sha256:/, "").slice(0, 12);
}
