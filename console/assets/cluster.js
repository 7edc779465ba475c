// Cluster (moderators and admins): members, this node, activations per kind and live
// figures (turns per second, errors, model cost), refreshed every few
// seconds from GET /api/v1/admin/cluster and /api/v1/admin/figures. Anyone
// else sees the API's refusal.

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

  // figuresCard shows this node's counters, the turn rate between the last
  // two reads and, when offered, the whole cluster's model usage today.
  let previous = null;
  const figuresCard = (fig) => {
    const card = h("section", { class: "card", "aria-labelledby": "fig-title" }, h("h2", { id: "fig-title" }, "Live figures of this node"));
    if (!fig) {
      card.append(h("p", { class: "hint" }, "Not offered by this node."));
      return card;
    }
    let rate = "measuring…";
    if (previous) {
      const secs = (new Date(fig.at) - new Date(previous.at)) / 1000;
      if (secs > 0) rate = ((fig.turns - previous.turns) / secs).toFixed(2);
    }
    previous = fig;
    const row = (label, value, id) => [h("dt", {}, label), h("dd", { id, class: "num" }, value)];
    card.append(
      h(
        "dl",
        { class: "facts" },
        row("Chat turns per second", rate, "fig-rate"),
        row("Chat turns since start", String(fig.turns), "fig-turns"),
        row("Turn errors since start", String(fig.turn_errors), "fig-turn-errors"),
        row("Model errors since start", String(fig.model_errors), "fig-model-errors"),
        row("Model cost since start", `$${fig.model_cost_usd.toFixed(4)}`, "fig-cost"),
      ),
      h("p", { class: "hint" }, "Counted by the node that answers since it started; the same counters are Prometheus metrics on its metrics address."),
    );
    if (fig.today) {
      card.append(
        h("h3", {}, "The whole cluster today"),
        h(
          "dl",
          { class: "facts" },
          row("Model cost today", `$${fig.today.cost_usd.toFixed(4)}`, "fig-cost-today"),
          row("Model tokens today", String(fig.today.tokens), "fig-tokens-today"),
        ),
        h("p", { class: "hint" }, `Every user's model calls since ${new Date(fig.today.since).toISOString().slice(0, 16).replace("T", " ")} UTC, from the usage ledger.`),
      );
    }
    return card;
  };

  const paint = (info, fig) => {
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
      figuresCard(fig),
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
    );
  };

  const tick = async () => {
    try {
      const [info, fig] = await Promise.all([
        client.api("GET", "/api/v1/admin/cluster"),
        client.api("GET", "/api/v1/admin/figures").catch((err) => {
          if (err instanceof client.ApiError && err.status === 404) return null;
          throw err;
        }),
      ]);
      if (stopped) return;
      paint(info, fig);
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
