// Workflows: the registered workflows with forms generated from their
// parameter schemas, the runs list with a status filter, and a run's page:
// a live timeline of its tasks (state, attempts, durations, errors) kept up
// to date from GET /api/v1/workflows/{run_id}/events, with cancel, retry and
// resume (a form for the input a paused run waits for).

import * as client from "./api.js";
import { h, clear, alertError, announce, describe, when, duration } from "./dom.js";
import { field, schemaForm } from "./forms.js";

const STATUSES = ["pending", "running", "retrying", "paused", "completed", "failed", "cancelled"];
const FINISHED = new Set(["completed", "failed", "cancelled"]);

export async function workflowsView(root, c) {
  document.title = "Workflows · kowai console";
  const first = await client.api("GET", "/api/v1/workflows?limit=20");
  const defs = h("div", { class: "workflows" });
  for (const wf of first.workflows) defs.append(workflowCard(wf, c));

  const filter = field("Status", h("select", {}));
  filter.control.append(h("option", { value: "" }, "any"));
  for (const s of STATUSES) filter.control.append(h("option", { value: s }, s));
  const rows = h("tbody");
  const more = h("button", { type: "button", hidden: true }, "More runs");
  let cursor = "";
  const runs = h(
    "section",
    { class: "card", "aria-labelledby": "runs-title" },
    h("h2", { id: "runs-title" }, "Runs"),
    filter.row,
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, "Your workflow runs, newest first"),
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Started", "Finished"].map((t) => h("th", { scope: "col" }, t)))),
      rows,
    ),
    more,
  );
  root.append(h("h1", {}, "Workflows"), defs, runs);

  const show = (page, append) => {
    if (!append) clear(rows);
    for (const r of page.runs) {
      rows.append(
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/runs/${r.run_id}` }, r.run_id.slice(0, 8))),
          h("td", {}, r.name),
          h("td", {}, h("span", { class: `badge ${r.status}` }, r.status)),
          h("td", {}, when(r.created_at)),
          h("td", {}, when(r.finished_at)),
        ),
      );
    }
    if (!append && page.runs.length === 0) rows.append(h("tr", {}, h("td", { colspan: 5, class: "hint" }, "No runs.")));
    cursor = page.next_cursor || "";
    more.hidden = !cursor;
  };
  const load = async (append) => {
    show(await client.api("GET", `/api/v1/workflows${client.query({ status: filter.control.value, limit: 20, cursor: append ? cursor : "" })}`), append);
  };
  filter.control.addEventListener("change", () => load(false).catch(c.fail));
  more.addEventListener("click", () => load(true).catch(c.fail));
  show(first, false);
}

function workflowCard(wf, c) {
  const titleId = `wf-${wf.name}`;
  const params = schemaForm(wf.parameters || { type: "object" }, {}, { legend: "Parameters" });
  const trigger = h("button", { type: "submit", class: "primary" }, "Trigger");
  const form = h("form", { novalidate: true }, params.element, trigger);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    alertError("");
    params.clearErrors();
    const read = params.read();
    if (read.errors.length) {
      params.setErrors(read.errors);
      alertError("Some parameters are not valid; see the fields.");
      return;
    }
    trigger.disabled = true;
    try {
      const run = await client.api("POST", "/api/v1/workflows/trigger", { name: wf.name, parameters: read.value });
      announce(`Run of ${wf.name} started`);
      c.go(`#/runs/${run.run_id}`);
    } catch (err) {
      const inner = (err.fieldErrors || []).map((fe) => ({ field: fe.field.replace(/^parameters\.?/, ""), message: fe.message }));
      params.setErrors(inner);
      alertError(describe(err));
    } finally {
      trigger.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": titleId }, h("h2", { id: titleId }, wf.name), h("p", {}, wf.description || ""), form);
}

export async function runView(root, c, runId) {
  document.title = "Run · kowai console";
  const abort = new AbortController();
  const st = await client.api("GET", `/api/v1/workflows/${encodeURIComponent(runId)}/status`);
  const tasks = new Map(); // seq -> task
  for (const t of st.tasks || []) tasks.set(t.seq, { ...t });
  let status = st.status;

  const statusEl = h("span", { class: `badge ${status}`, id: "run-status" }, status);
  const heading = h("h1", {}, `${st.name} `, h("span", { class: "hint" }, runId));
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel run");
  const retry = h("button", { type: "button" }, "Retry run");
  const controls = h("p", { class: "controls" }, cancel, " ", retry);
  const resumeBox = h("div");
  const timeline = h("ol", { class: "timeline", "aria-label": "Tasks" });
  const errorEl = h("p", { class: "field-error", hidden: true });
  const result = h("pre", { class: "result", hidden: true });
  // lineage links the runs of a continue-as-new chain.
  const lineage = h("p", { class: "hint", id: "run-lineage", hidden: true });
  const runLink = (id) => h("a", { href: `#/runs/${encodeURIComponent(id)}` }, id);
  let continuedFrom = st.continued_from || "";
  let continuedAs = st.continued_as || "";
  const showLineage = () => {
    clear(lineage);
    if (continuedFrom) lineage.append("Continues run ", runLink(continuedFrom), ". ");
    if (continuedAs) lineage.append("Continued as new in run ", runLink(continuedAs), ".");
    lineage.hidden = !continuedFrom && !continuedAs;
  };
  root.append(
    h("p", {}, h("a", { href: "#/workflows" }, "← Workflows")),
    heading,
    h("section", { class: "card", "aria-label": "Run" }, h("p", {}, "Status: ", statusEl, " · started ", when(st.created_at)), lineage, controls, errorEl),
    h("section", { class: "card", "aria-labelledby": "tasks-title" }, h("h2", { id: "tasks-title" }, "Tasks"), timeline),
    resumeBox,
    h("section", { class: "card", "aria-labelledby": "result-title" }, h("h2", { id: "result-title" }, "Result"), result),
  );

  const paint = () => {
    statusEl.textContent = status;
    statusEl.className = `badge ${status}`;
    cancel.disabled = FINISHED.has(status);
    retry.disabled = status !== "failed";
    clear(timeline);
    for (const t of [...tasks.values()].sort((a, b) => a.seq - b.seq)) {
      timeline.append(
        h(
          "li",
          { class: `task ${t.status}`, "data-task": t.name },
          h("span", { class: "task-name" }, t.name),
          " ",
          h("span", { class: "hint" }, t.kind || ""),
          " ",
          h("span", { class: `badge ${t.status}` }, t.status),
          h("span", { class: "hint" }, ` attempt ${t.attempts || 1}`),
          t.started_at ? h("span", { class: "hint" }, ` · ${duration(t.started_at, t.finished_at)}`) : null,
          t.error ? h("p", { class: "field-error" }, t.error) : null,
        ),
      );
    }
    if (tasks.size === 0) timeline.append(h("li", { class: "hint" }, "No task has started yet."));
  };

  const showResult = (r, err) => {
    if (r !== undefined && r !== null) {
      result.textContent = JSON.stringify(r, null, 2);
      result.hidden = false;
    }
    errorEl.textContent = err || "";
    errorEl.hidden = !err;
  };

  const showWaiting = (waiting) => {
    clear(resumeBox);
    if (!waiting || status !== "paused") return;
    const input = schemaForm(waiting.schema || { type: "object" }, {}, { legend: `Input “${waiting.name}”` });
    const go = h("button", { type: "submit", class: "primary" }, "Resume");
    const form = h("form", { class: "card", novalidate: true, "aria-label": "Resume" }, h("h2", {}, "This run waits for input"), input.element, go);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      input.clearErrors();
      const read = input.read();
      if (read.errors.length) {
        input.setErrors(read.errors);
        return;
      }
      try {
        await client.api("POST", `/api/v1/workflows/${encodeURIComponent(runId)}/resume`, { input: read.value });
        announce("Run resumed");
        clear(resumeBox);
      } catch (err) {
        input.setErrors((err.fieldErrors || []).map((fe) => ({ field: fe.field.replace(/^input\.?/, ""), message: fe.message })));
        alertError(describe(err));
      }
    });
    resumeBox.append(form);
  };

  // Only the newest status read is shown: an older one that answers late (a
  // read started while the run was paused) must not undo a newer state.
  let statusReads = 0;
  const refreshStatus = async () => {
    const read = ++statusReads;
    const now = await client.api("GET", `/api/v1/workflows/${encodeURIComponent(runId)}/status`);
    if (read !== statusReads) return;
    status = now.status;
    continuedAs = now.continued_as || continuedAs;
    showLineage();
    for (const t of now.tasks || []) tasks.set(t.seq, { ...tasks.get(t.seq), ...t });
    paint();
    showWaiting(now.waiting);
    showResult(now.result, now.error);
  };

  cancel.addEventListener("click", async () => {
    try {
      await client.api("POST", `/api/v1/workflows/${encodeURIComponent(runId)}/cancel`, {});
      announce("Cancelling the run");
    } catch (err) {
      c.fail(err);
    }
  });
  retry.addEventListener("click", async () => {
    try {
      await client.api("POST", `/api/v1/workflows/${encodeURIComponent(runId)}/retry`, {});
      announce("Retrying the run");
      follow();
    } catch (err) {
      c.fail(err);
    }
  });

  paint();
  showWaiting(st.waiting);
  showResult(st.result, st.error);
  showLineage();

  // follow reads the run's event stream until its result, resuming after
  // the last event it saw when the connection drops.
  let lastId = "";
  let following = false;
  async function follow() {
    if (following) return;
    following = true;
    let finished = false;
    try {
      while (!finished && !abort.signal.aborted) {
        try {
          await client.stream("GET", `/api/v1/workflows/${encodeURIComponent(runId)}/events`, {
            signal: abort.signal,
            lastEventId: lastId,
            onEvent: ({ event, data, id }) => {
              if (id) lastId = id;
              if (event === "task") {
                const t = tasks.get(data.seq) || { seq: data.seq, name: data.name, kind: data.kind };
                t.status = data.status;
                t.attempts = data.attempt || t.attempts;
                if (data.status === "running" && (!t.started_at || data.attempt !== t.lastAttempt)) {
                  t.started_at = data.time;
                  t.finished_at = "";
                }
                if (FINISHED.has(data.status) || data.status === "completed") t.finished_at = data.time;
                if (data.error) t.error = data.error;
                t.lastAttempt = data.attempt;
                tasks.set(data.seq, t);
                paint();
              } else if (event === "run") {
                status = data.status;
                paint();
                if (status === "paused") refreshStatus().catch(c.fail);
              } else if (event === "result") {
                status = data.status;
                finished = true;
                continuedAs = data.continued_as || continuedAs;
                showLineage();
                paint();
                showResult(data.result, data.error);
                announce(`Run ${status}`);
              }
            },
          });
        } catch (err) {
          if (err.name === "AbortError") return;
          if (err instanceof client.ApiError && err.status !== 0) throw err;
        }
        if (!finished && !abort.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
      }
      if (finished) await refreshStatus();
    } catch (err) {
      if (err.name !== "AbortError") c.fail(err);
    } finally {
      following = false;
    }
  }
  follow();
  return () => abort.abort();
}
