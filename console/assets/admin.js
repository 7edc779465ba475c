// Admin (admins): users with their roles (change them), delete a user, and
// the audit log (GET /api/v1/admin/audit), newest first.

import * as client from "./api.js";
import { h, clear, announce, when } from "./dom.js";

const ROLES = ["user", "premium", "moderator", "admin"];

export async function adminView(root, c) {
  document.title = "Admin · kowai console";
  const users = h("tbody");
  const moreUsers = h("button", { type: "button", hidden: true }, "More users");
  const audit = h("tbody");
  const moreAudit = h("button", { type: "button", hidden: true }, "More entries");
  const emails = new Map(); // user ID -> email, for the audit log
  let userCursor = "";
  let auditCursor = "";
  root.append(
    h("h1", {}, "Admin"),
    h(
      "section",
      { class: "card", "aria-labelledby": "users-title" },
      h("h2", { id: "users-title" }, "Users"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["Email", "Name", "Roles", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
        users,
      ),
      moreUsers,
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "audit-title" },
      h("h2", { id: "audit-title" }, "Audit log"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, ["When", "Action", "Actor", "Target", "Address", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
        audit,
      ),
      moreAudit,
    ),
  );

  function userRow(u) {
    const boxes = ROLES.map((r) => {
      const box = h("input", { type: "checkbox", value: r, "aria-label": `${r} role of ${u.email}` });
      box.checked = u.roles.includes(r);
      return h("label", { class: "role" }, box, ` ${r}`);
    });
    const save = h("button", { type: "button", "aria-label": `Save roles of ${u.email}` }, "Save roles");
    const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${u.email}` }, "Delete");
    const row = h(
      "tr",
      {},
      h("th", { scope: "row" }, u.email, u.disabled ? " (disabled)" : ""),
      h("td", {}, u.name || ""),
      h("td", { class: "roles" }, h("fieldset", { class: "inline" }, h("legend", { class: "visually-hidden" }, `Roles of ${u.email}`), boxes), save),
      h("td", {}, when(u.created_at)),
      h("td", {}, u.id === c.me.id ? h("span", { class: "hint" }, "you") : del),
    );
    save.addEventListener("click", async () => {
      const roles = [...row.querySelectorAll("input[type=checkbox]")].filter((b) => b.checked).map((b) => b.value);
      try {
        await client.api("PUT", `/api/v1/admin/users/${encodeURIComponent(u.id)}/roles`, { roles });
        announce(`Roles of ${u.email} saved; their sessions were signed out`);
        await loadAudit(false);
      } catch (err) {
        c.fail(err);
      }
    });
    del.addEventListener("click", () => {
      const sure = h("button", { type: "button", class: "danger" }, `Confirm delete ${u.email}`);
      const keep = h("button", { type: "button" }, "Keep");
      const box = h("span", {}, sure, " ", keep);
      del.replaceWith(box);
      sure.focus();
      keep.addEventListener("click", () => box.replaceWith(del));
      sure.addEventListener("click", async () => {
        try {
          await client.api("DELETE", `/api/v1/admin/users/${encodeURIComponent(u.id)}`);
          announce(`${u.email} deleted`);
          row.remove();
          await loadAudit(false);
        } catch (err) {
          c.fail(err);
        }
      });
    });
    return row;
  }

  async function loadUsers(more) {
    const page = await client.api("GET", `/api/v1/admin/users${client.query({ limit: 50, cursor: more ? userCursor : "" })}`);
    if (!more) clear(users);
    for (const u of page.users) {
      emails.set(u.id, u.email);
      users.append(userRow(u));
    }
    userCursor = page.next_cursor;
    moreUsers.hidden = !userCursor;
  }

  async function loadAudit(more) {
    const page = await client.api("GET", `/api/v1/admin/audit${client.query({ limit: 50, cursor: more ? auditCursor : "" })}`);
    if (!more) clear(audit);
    for (const e of page.entries) {
      audit.append(
        h(
          "tr",
          {},
          h("td", {}, when(e.created_at)),
          h("td", {}, h("code", {}, e.action)),
          h("td", {}, e.actor_id ? emails.get(e.actor_id) || e.actor_id : "system"),
          h("td", {}, [e.target_type, (e.target_type === "user" && emails.get(e.target_id)) || e.target_id].filter(Boolean).join(" ")),
          h("td", {}, e.ip || ""),
          h("td", {}, e.detail ? h("code", { class: "detail" }, JSON.stringify(e.detail)) : ""),
        ),
      );
    }
    auditCursor = page.next_cursor;
    moreAudit.hidden = !auditCursor;
  }

  moreUsers.addEventListener("click", () => loadUsers(true).catch(c.fail));
  moreAudit.addEventListener("click", () => loadAudit(true).catch(c.fail));
  await loadUsers(false);
  await loadAudit(false);
}
