// Cluster (admins): members, this node, activations per kind, refreshed
// every few seconds from GET /api/v1/admin/cluster. Anyone else sees the
// API's refusal.

import * as client from "./api.js";
import { h, clear, when } from "./dom.js";

const EVERY = 3000;

export async function clusterView(root, c) {
  document.title = "Cluster · kowai console";
  const body = h("div", { "aria-live": "off" });
  const updated = h("p", { class: "hint" });
  root.append(h("h1", {}, "Cluster"), updated, body);
  let timer = 0;
  let stopped = false;

  const member = (m, self) =>
    h(
      "tr",
      {},
      h("td", {}, m.id, self && m.id === self.id ? " (this node)" : ""),
      h("td", {}, m.address || ""),
      h("td", {}, (m.kinds || []).join(", ")),
    );

  const paint = (info) => {
    clear(body);
    const kinds = Object.entries(info.activations || {});
    body.append(
      h(
        "section",
        { class: "card", "aria-labelledby": "node-title" },
        h("h2", { id: "node-title" }, "This node"),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Cluster"),
          h("dd", {}, `${info.name || ""} (${info.provider || "?"} provider)`),
          h("dt", {}, "Node"),
          h("dd", {}, info.self ? `${info.self.id} at ${info.self.address}` : "unknown"),
          h("dt", {}, "Draining"),
          h("dd", {}, info.draining ? "yes" : "no"),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "members-title" },
        h("h2", { id: "members-title" }, `Members (${(info.members || []).length})`),
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Member", "Address", "Kinds"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, (info.members || []).map((m) => member(m, info.self))),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "act-title" },
        h("h2", { id: "act-title" }, "Activations on this node"),
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Kind"), h("th", { scope: "col" }, "Activations"))),
          h("tbody", {}, kinds.map(([k, n]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, String(n))))),
        ),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "fig-title" },
        h("h2", { id: "fig-title" }, "Live figures"),
        h(
          "p",
          { class: "hint" },
          "Turns per second, errors and model cost today are not offered by the API; they are Prometheus metrics on the node's metrics address (kowai_chat_turns_total, kowai_llm_errors_total, kowai_llm_cost_usd_total).",
        ),
      ),
    );
  };

  const tick = async () => {
    try {
      const info = await client.api("GET", "/api/v1/admin/cluster");
      if (stopped) return;
      paint(info);
      updated.textContent = `Updated ${when(new Date().toISOString())}; refreshed every ${EVERY / 1000} s.`;
      timer = setTimeout(tick, EVERY);
    } catch (err) {
      if (stopped) return;
      if (err instanceof client.ApiError && err.status === 403) {
        clear(body);
        updated.textContent = "";
        body.append(h("p", { class: "card refused", role: "note" }, "Not permitted: the cluster page is for administrators."));
        c.fail(err);
        return;
      }
      c.fail(err);
      timer = setTimeout(tick, EVERY);
    }
  };
  await tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
