// The console's shell: sign-in, navigation (hash routes), the signed-in
// user, and the account page. Each area lives in its own module.

import * as client from "./api.js";
import { h, clear, alertError, announce, describe } from "./dom.js";
import { field } from "./forms.js";
import { chatView } from "./chat.js";
import { agentsView } from "./agents.js";
import { workflowsView, runView } from "./workflows.js";
import { clusterView } from "./cluster.js";
import { adminView } from "./admin.js";

const main = document.getElementById("main");
const state = { me: null, cleanup: null };

/** ctx is what every view gets: the user and helpers. */
function ctx() {
  return {
    me: state.me,
    isAdmin: hasRole("admin"),
    isModerator: hasRole("moderator") || hasRole("admin"),
    go: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    fail: (err) => {
      if (err instanceof client.ApiError && err.status === 401) {
        client.forget();
        return;
      }
      alertError(describe(err));
    },
  };
}

function hasRole(r) {
  return Boolean(state.me && state.me.roles && state.me.roles.includes(r));
}

async function loadMe() {
  state.me = await client.api("GET", "/api/v1/auth/me");
  document.getElementById("who-name").textContent = state.me.name ? `${state.me.name} (${state.me.email})` : state.me.email;
  document.getElementById("nav-admin").hidden = !hasRole("admin");
}

function showShell(on) {
  document.getElementById("nav").hidden = !on;
  document.getElementById("who").hidden = !on;
}

function markNav(area) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${area}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route() {
  if (state.cleanup) {
    state.cleanup();
    state.cleanup = null;
  }
  alertError("");
  if (!client.signedIn()) {
    showShell(false);
    signInView();
    return;
  }
  if (!state.me) {
    try {
      await loadMe();
    } catch (err) {
      if (err instanceof client.ApiError && err.status === 401) {
        client.forget();
        return;
      }
      alertError(describe(err));
    }
  }
  showShell(true);
  const [, area = "chat", ...rest] = (location.hash || "#/chat").split("/");
  markNav(area === "runs" ? "workflows" : area);
  clear(main);
  const views = {
    chat: () => chatView(main, ctx(), rest[0]),
    agents: () => agentsView(main, ctx()),
    workflows: () => workflowsView(main, ctx()),
    runs: () => runView(main, ctx(), rest[0]),
    cluster: () => clusterView(main, ctx()),
    admin: () => adminView(main, ctx()),
    account: () => accountView(main, ctx()),
  };
  const view = views[area] || views.chat;
  try {
    state.cleanup = (await view()) || null;
  } catch (err) {
    ctx().fail(err);
  }
}

function signInView() {
  clear(main);
  document.title = "Sign in · kowai console";
  const email = field("Email", h("input", { type: "email", autocomplete: "username", required: true }));
  const password = field("Password", h("input", { type: "password", autocomplete: "current-password", required: true }));
  const name = field("Name", h("input", { type: "text", autocomplete: "name" }), "shown to administrators; optional");
  name.row.hidden = true;
  let registering = false;
  const submit = h("button", { type: "submit" }, "Sign in");
  const toggle = h("button", { type: "button", class: "link" }, "New here? Create an account");
  const title = h("h1", {}, "Sign in");
  const form = h("form", { class: "card narrow", novalidate: true }, title, name.row, email.row, password.row, submit, " ", toggle);
  toggle.addEventListener("click", () => {
    registering = !registering;
    name.row.hidden = !registering;
    title.textContent = registering ? "Create an account" : "Sign in";
    submit.textContent = registering ? "Create account" : "Sign in";
    toggle.textContent = registering ? "I have an account: sign in" : "New here? Create an account";
    password.control.autocomplete = registering ? "new-password" : "current-password";
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    alertError("");
    email.setError("");
    password.setError("");
    name.setError("");
    submit.disabled = true;
    try {
      if (registering) await client.register(email.control.value, password.control.value, name.control.value);
      await client.signIn(email.control.value, password.control.value);
      announce("Signed in");
    } catch (err) {
      const byField = { email, password, name };
      for (const fe of err.fieldErrors || []) byField[fe.field]?.setError(fe.message);
      alertError(describe(err));
    } finally {
      submit.disabled = false;
    }
  });
  const jwt = field("Appwrite JWT", h("input", { type: "password", autocomplete: "off" }), "from your Appwrite app's account.createJWT(); works when this node has Appwrite configured");
  const appwrite = h(
    "details",
    { class: "card narrow" },
    h("summary", {}, "Sign in with Appwrite"),
    h(
      "form",
      {
        novalidate: true,
        onsubmit: async (e) => {
          e.preventDefault();
          alertError("");
          try {
            await client.signInAppwrite(jwt.control.value);
          } catch (err) {
            alertError(err.status === 404 ? "Appwrite sign-in is not configured on this node." : describe(err));
          }
        },
      },
      jwt.row,
      h("button", { type: "submit" }, "Sign in with Appwrite"),
    ),
  );
  main.append(form, appwrite);
  email.control.focus();
}

async function accountView(root, c) {
  document.title = "Account · kowai console";
  const list = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", {}, "Your sign-in sessions"),
    h("thead", {}, h("tr", {}, ["Signed in", "Last refreshed", "Expires", "Client", "Address", ""].map((t) => h("th", { scope: "col" }, t)))),
    list,
  );
  const others = h("button", { type: "button" }, "Sign out other sessions");
  root.append(
    h("h1", {}, "Account"),
    h("section", { class: "card" }, h("h2", {}, "You"), h("p", {}, `${c.me.name || ""} ${c.me.email} — roles: ${c.me.roles.join(", ")}`)),
    h("section", { class: "card" }, table, others),
  );
  const load = async () => {
    const page = await client.api("GET", "/api/v1/auth/sessions");
    clear(list);
    for (const s of page.sessions) {
      const end = h("button", { type: "button", "aria-label": `Sign out session started ${s.created_at}` }, "Sign out");
      end.addEventListener("click", async () => {
        try {
          await client.api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
          if (s.current) client.forget();
          else await load();
        } catch (err) {
          c.fail(err);
        }
      });
      list.append(
        h(
          "tr",
          {},
          h("td", {}, new Date(s.created_at).toLocaleString(), s.current ? " (this one)" : ""),
          h("td", {}, s.last_refreshed_at ? new Date(s.last_refreshed_at).toLocaleString() : ""),
          h("td", {}, s.expires_at ? new Date(s.expires_at).toLocaleString() : ""),
          h("td", {}, s.user_agent || ""),
          h("td", {}, s.ip || ""),
          h("td", {}, s.current ? "" : end),
        ),
      );
    }
    others.disabled = !page.sessions.some((s) => !s.current);
    return page;
  };
  others.addEventListener("click", async () => {
    try {
      const page = await client.api("GET", "/api/v1/auth/sessions");
      for (const s of page.sessions) if (!s.current) await client.api("DELETE", `/api/v1/auth/sessions/${encodeURIComponent(s.id)}`);
      announce("Other sessions signed out");
      await load();
    } catch (err) {
      c.fail(err);
    }
  });
  await load();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await client.signOut();
    announce("Signed out");
  } catch (err) {
    alertError(describe(err));
  }
});

client.onAuthChange((on) => {
  if (!on) {
    state.me = null;
    route();
  } else if (!state.me) route();
});

window.addEventListener("hashchange", route);
route();
