// End-to-end tests of the kowai console in headless Chromium, driven by
// playwright-core (no browser download: CHROMIUM_PATH is Debian's chromium).
// gateway/clustertest/console_test.go starts a node and runs this script:
//
//   KOWAI_CONSOLE_URL=http://127.0.0.1:PORT/console CHROMIUM_PATH=/usr/bin/chromium \
//   KOWAI_ADMIN_EMAIL=... KOWAI_ADMIN_PASSWORD=... KOWAI_CONSOLE_PROGRAM=state.json node console.mjs
//
// KOWAI_CONSOLE_SCREENSHOTS=DIR also writes the README's screenshots there.
// Every check finds controls by their accessible names, as a screen reader
// user would. The script exits 1 at the first failed check.

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const base = need("KOWAI_CONSOLE_URL");
const executablePath = need("CHROMIUM_PATH");
const adminEmail = need("KOWAI_ADMIN_EMAIL");
const adminPassword = need("KOWAI_ADMIN_PASSWORD");
const shots = process.env.KOWAI_CONSOLE_SCREENSHOTS || "";
// A compiled state of the chat type's program (as kowai optimize --out writes
// it), deployed to an agent as a canary.
const programFile = need("KOWAI_CONSOLE_PROGRAM");
const programVersion = JSON.parse(readFileSync(programFile, "utf8")).version.replace(/^sha256:/, "");
const WAIT = 20000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`console.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what} (${Date.now() - started} ms)`);
}

async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `console-${name}.png`), type: "png" });
}

const browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
const failures = [];
const started = Date.now();

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`# ${name}: passed in ${Date.now() - t0} ms`);
  } catch (err) {
    console.error(`# ${name}: FAILED: ${err.stack || err}`);
    failures.push(name);
  }
}

// newPage opens the console in a fresh context (its own session storage),
// collecting the page's errors and every CSP violation.
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 }, colorScheme: "light" });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (err) => page.problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !/status of (401|403|404|400|409)|ERR_CONNECTION_RESET/.test(msg.text())) page.problems.push(`console error: ${msg.text()}`);
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__cspViolations = (window.__cspViolations || 0) + 1;
    });
  });
  await page.goto(base);
  return page;
}

async function signIn(page, email, password) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("button", { name: "Sign out", exact: true }).waitFor({ timeout: WAIT });
}

const userEmail = `ada-${Date.now()}@example.com`;
const userPassword = "correct horse battery staple";
let user;
let admin;

await step("sign up, sign out and sign in", async () => {
  user = await newPage();
  const page = user;
  await page.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: WAIT });
  await page.getByRole("button", { name: "New here? Create an account" }).click();
  await page.getByLabel("Name").fill("Ada");
  await page.getByLabel("Email").fill(userEmail);
  await page.getByLabel("Password").fill(userPassword);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("button", { name: "Sign out", exact: true }).waitFor({ timeout: WAIT });
  const who = await page.locator("#who").textContent();
  check(who.includes(userEmail), `the new user is signed in and named in the header (${who.trim()})`);
  for (const name of ["Chat", "Agents", "Workflows", "Cluster"]) {
    check(await page.getByRole("link", { name, exact: true }).isVisible(), `navigation link ${name}`);
  }
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await page.getByRole("button", { name: "Sign in", exact: true }).waitFor({ timeout: WAIT });
  check(!(await page.getByRole("link", { name: "Chat", exact: true }).isVisible()), "signed out: the navigation is gone");
  // A wrong password is announced in the live region.
  await page.getByLabel("Email").fill(userEmail);
  await page.getByLabel("Password").fill("not the password at all");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("alert").filter({ hasText: /Unauthorized|invalid/i }).waitFor({ timeout: WAIT });
  check(true, "a refused sign-in is announced in the alert region");
  await signIn(page, userEmail, userPassword);
});

let replyText = "";
await step("chat: a streamed reply in pieces, safe Markdown, feedback", async () => {
  const page = user;
  await page.getByRole("link", { name: "Chat", exact: true }).click();
  await page.getByRole("button", { name: "New conversation" }).click();
  const box = page.getByLabel("Message", { exact: true });
  await box.waitFor({ timeout: WAIT });
  // Record every piece of text added to a streaming reply.
  await page.evaluate(() => {
    window.__pieces = [];
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.target.classList && r.target.classList.contains("streaming")) {
          for (const n of r.addedNodes) if (n.nodeType === Node.TEXT_NODE) window.__pieces.push(n.data);
        }
      }
    }).observe(document.getElementById("main"), { childList: true, subtree: true });
  });
  const hostile = "Hi <img src=x onerror=window.__pwned=1> and **bold**";
  await box.fill(hostile);
  await box.press("Enter"); // keyboard: Enter sends
  const good = page.getByRole("button", { name: "Good reply" });
  await good.waitFor({ timeout: WAIT });
  const pieces = await page.evaluate(() => window.__pieces);
  check(pieces.length >= 2, `the reply streamed in ${pieces.length} pieces`);
  const joined = pieces.join("");
  replyText = joined;
  check(joined.includes("offline model"), "the pieces make up the reply");
  const reply = page.locator(".msg.assistant").last();
  const shown = await reply.locator(".text").textContent();
  check(shown.includes("<img src=x onerror"), "markup in the reply shows as text");
  check((await page.locator("#main img").count()) === 0, "no image element was created from model or user text");
  check((await page.evaluate(() => window.__pwned)) === undefined, "no injected handler ran");
  check((await reply.locator("strong").count()) === 1, "Markdown bold is rendered as an element");
  await good.click();
  await page.locator('button[aria-label="Good reply"][aria-pressed="true"]').waitFor({ timeout: WAIT });
  check(true, "feedback is accepted (thumbs up pressed)");
  // The conversation is listed, newest first.
  await page.getByRole("navigation", { name: "Conversations" }).getByRole("link").first().waitFor({ timeout: WAIT });
  check(/#\/chat\/[0-9a-f-]{36}$/.test(page.url()), "the new conversation's ID is in the address");
  await box.fill("And a second turn");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await page.getByRole("button", { name: "Good reply" }).nth(1).waitFor({ timeout: WAIT });
  // A turn whose connection fails offers Retry, which sends it again with
  // the same Idempotency-Key.
  const keys = [];
  await page.route("**/api/v1/chat/message", (route) => {
    keys.push(route.request().headers()["idempotency-key"]);
    return keys.length === 1 ? route.abort("connectionreset") : route.continue();
  });
  await box.fill("A turn that fails once");
  await box.press("Enter");
  const retry = page.getByRole("button", { name: "Retry", exact: true });
  await retry.waitFor({ timeout: WAIT });
  check(/failed/i.test(await page.getByRole("alert").textContent()), "the failed turn is announced");
  await retry.click();
  await page.getByRole("button", { name: "Good reply" }).nth(2).waitFor({ timeout: WAIT });
  check(keys.length === 2 && keys[0] && keys[0] === keys[1], "the retry reuses the turn's Idempotency-Key");
  await page.unroute("**/api/v1/chat/message");
  // Reloading shows the history from the API, feedback buttons included.
  await page.reload();
  await page.getByRole("button", { name: "Good reply" }).nth(2).waitFor({ timeout: WAIT });
  check((await page.locator(".msg.user").count()) === 3, "the history has the three messages after a reload");
  check((await page.locator("#main img").count()) === 0, "history renders markup as text too");
  await shot(page, "chat");
});

await step("agents: a field error from the generated form, then create", async () => {
  const page = user;
  await page.getByRole("link", { name: "Agents", exact: true }).click();
  await page.getByRole("button", { name: "Create agent" }).click();
  await page.getByLabel("Name", { exact: true }).fill("support-bot");
  await page.getByLabel("Type", { exact: true }).selectOption("chat");
  // The models GET /api/v1/models offers this user, the node's default first.
  const models = await page.getByLabel("Model", { exact: true }).locator("option").allTextContents();
  check(/^The node's default/.test(models[0]) && models.some((m) => m.startsWith("openai:gpt-4o-mini")), `the model field offers the node's models (${models.join(" | ")})`);
  check(!models.some((m) => m.startsWith("openai:gpt-4o ") || m === "openai:gpt-4o"), "a premium model is not offered to a user without the premium role");
  // Generated from the chat type's config_schema.
  const temperature = page.getByLabel("temperature", { exact: true });
  await temperature.fill("5");
  await page.getByLabel("busy_policy", { exact: true }).selectOption("reject");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.locator('[aria-invalid="true"]').first().waitFor({ timeout: WAIT });
  check((await temperature.getAttribute("aria-invalid")) === "true", "temperature is marked invalid");
  const errorId = (await temperature.getAttribute("aria-describedby")).split(" ").pop();
  const message = await page.locator(`#${errorId}`).textContent();
  check(/at most 2/.test(message), `the field error is next to the field: "${message}"`);
  await shot(page, "agents");
  await temperature.fill("0.4");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("rowheader", { name: "support-bot" }).waitFor({ timeout: WAIT });
  check(true, "the agent is created and listed");
  // Edit it: the form comes back with its config filled in.
  await page.getByRole("button", { name: "Edit support-bot" }).click();
  check((await page.getByLabel("temperature", { exact: true }).inputValue()) === "0.4", "the edit form shows the saved config");
  await page.getByLabel("Name", { exact: true }).fill("support-bot-2");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.getByRole("rowheader", { name: "support-bot-2" }).waitFor({ timeout: WAIT });
  check(true, "the agent is saved under its new name");
  // Its statistics: one row, for turns without a variant (it has none yet).
  await page.getByRole("button", { name: "Statistics of support-bot-2" }).click();
  const stats = page.getByRole("region", { name: "Statistics of support-bot-2" });
  await stats.getByRole("rowheader", { name: "(no variant)" }).waitFor({ timeout: WAIT });
  check((await stats.locator("tbody tr").count()) === 1, "the statistics table shows the agent's one (no variant) row");
});

await step("agents: deploy compiled state as a canary, then promote it", async () => {
  const page = user;
  await page.getByRole("button", { name: "Deploy a program to support-bot-2" }).click();
  const percent = page.getByLabel("Percent", { exact: true });
  await percent.fill("150");
  await page.getByLabel("Compiled state", { exact: true }).setInputFiles(programFile);
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  await page.locator('[aria-invalid="true"]').first().waitFor({ timeout: WAIT });
  const errorId = (await percent.getAttribute("aria-describedby")).split(" ").pop();
  const message = await page.locator(`#${errorId}`).textContent();
  check(/from 1 to 100/.test(message), `the server's field error is next to the percent: "${message}"`);
  await percent.fill("50");
  await page.getByRole("button", { name: "Deploy", exact: true }).click();
  const row = page.getByRole("row").filter({ has: page.getByRole("rowheader", { name: "support-bot-2" }) });
  const canary = row.locator(".canary");
  await canary.waitFor({ timeout: WAIT });
  const shown = await canary.textContent();
  check(shown.startsWith(`canary ${programVersion.slice(0, 12)} at 50%`), `the agent's row shows its canary: "${shown}"`);
  check((await row.locator(".program span").first().textContent()) === "the type's own", "the agent still runs its type's own program");
  await shot(page, "agents-canary");
  await page.getByRole("button", { name: "Promote the canary of support-bot-2" }).click();
  await row.locator(".program span", { hasText: `compiled ${programVersion.slice(0, 12)}` }).waitFor({ timeout: WAIT });
  check((await row.locator(".canary").count()) === 0, "after the promotion the agent runs the compiled program and has no canary");
});

async function triggerApproval(page, request) {
  await page.getByRole("link", { name: "Workflows", exact: true }).click();
  const card = page.getByRole("region", { name: "approval", exact: true });
  await card.getByLabel("request (required)").fill(request);
  await card.getByRole("button", { name: "Trigger" }).click();
  await page.getByRole("button", { name: "Cancel run" }).waitFor({ timeout: WAIT });
  await page.locator("#run-status", { hasText: "paused" }).waitFor({ timeout: WAIT });
}

await step("workflows: trigger, watch tasks complete, resume, cancel", async () => {
  const page = user;
  await page.getByRole("link", { name: "Workflows", exact: true }).click();
  const card = page.getByRole("region", { name: "complex-analysis", exact: true });
  await card.getByLabel("data (required)").fill("month,sales\njan,10\nfeb,14");
  await card.getByRole("button", { name: "Trigger" }).click();
  await page.locator("#run-status", { hasText: "completed" }).waitFor({ timeout: WAIT });
  const tasks = page.getByRole("list", { name: "Tasks" });
  for (const name of ["analyze", "report"]) {
    await tasks.locator(`li[data-task="${name}"].completed`).waitFor({ timeout: WAIT });
  }
  check(true, "complex-analysis: both tasks are completed on the timeline");
  check((await page.locator(".result").textContent()).includes("report"), "the run's result is shown");

  // A run that continues as new links to the run that continues it, and back.
  await page.getByRole("link", { name: "← Workflows" }).click();
  const countdown = page.getByRole("region", { name: "countdown", exact: true });
  await countdown.getByLabel(/^n\b/).fill("1");
  await countdown.getByRole("button", { name: "Trigger" }).click();
  await page.locator("#run-lineage", { hasText: "Continued as new in run" }).waitFor({ timeout: WAIT });
  check((await page.locator("#run-status").textContent()) === "completed", "the first run of the chain completed");
  await page.locator("#run-lineage a").click();
  await page.locator("#run-lineage", { hasText: "Continues run" }).waitFor({ timeout: WAIT });
  await page.locator(".result", { hasText: "liftoff" }).waitFor({ timeout: WAIT });
  check(true, "the continuing run links back to the first and shows the chain's result");

  // A run that waits for a person: the timeline follows it live from the
  // event stream while it is resumed through the generated form.
  await triggerApproval(page, "Can I get a refund?");
  const states = [];
  await page.evaluate(() => {
    window.__timeline = [];
    new MutationObserver(() => {
      window.__timeline.push([...document.querySelectorAll(".timeline li")].map((li) => `${li.dataset.task}:${li.className}`).join(","));
    }).observe(document.querySelector(".timeline"), { childList: true, subtree: true });
  });
  await shot(page, "run");
  await page.getByLabel("approved (required)").selectOption("true");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.locator("#run-status", { hasText: "completed" }).waitFor({ timeout: WAIT });
  states.push(...(await page.evaluate(() => window.__timeline)));
  check(states.length >= 1, `the timeline changed ${states.length} times from the event stream after the resume`);
  check((await page.locator(".result").textContent()).includes("approved"), "the approval run finished approved");

  // Another one, cancelled.
  await triggerApproval(page, "Please cancel me");
  await page.getByRole("button", { name: "Cancel run" }).click();
  await page.locator("#run-status", { hasText: "cancelled" }).waitFor({ timeout: WAIT });
  check(await page.getByRole("button", { name: "Cancel run" }).isDisabled(), "a cancelled run cannot be cancelled again");

  // The runs list filters by status.
  await page.getByRole("link", { name: "Workflows", exact: true }).click();
  await page.getByLabel("Status", { exact: true }).selectOption("cancelled");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#runs-title ~ table tbody tr")];
    return rows.length === 1 && rows[0].textContent.includes("cancelled");
  }, null, { timeout: WAIT });
  check(true, "the status filter lists only the cancelled run");
  await page.getByLabel("Status", { exact: true }).selectOption("");
  await page.waitForFunction(() => document.querySelectorAll("#runs-title ~ table tbody tr").length === 5, null, { timeout: WAIT });
  check(true, "without the filter all five runs are listed (the countdown chain is two)");
  await shot(page, "workflows");
});

await step("account: sign out other sessions", async () => {
  const page = user;
  const origin = new URL(base).origin;
  const res = await fetch(`${origin}/api/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: userEmail, password: userPassword }),
  });
  check(res.status === 200, "a second session signs in elsewhere");
  const other = await res.json();
  await page.getByRole("link", { name: "Account", exact: true }).click();
  const rows = page.getByRole("table", { name: "Your sign-in sessions" }).locator("tbody tr");
  await page.waitForFunction(() => document.querySelectorAll("table tbody tr").length === 2, null, { timeout: WAIT });
  check((await rows.filter({ hasText: "(this one)" }).count()) === 1, "the session list marks the current session");
  await page.getByRole("button", { name: "Sign out other sessions" }).click();
  await page.waitForFunction(() => document.querySelectorAll("table tbody tr").length === 1, null, { timeout: WAIT });
  let status = 0;
  for (let i = 0; i < 50 && status !== 401; i++) {
    status = (await fetch(`${origin}/api/v1/auth/me`, { headers: { Authorization: `Bearer ${other.access_token}` } })).status;
    if (status !== 401) await new Promise((r) => setTimeout(r, 100));
  }
  check(status === 401, "the other session's token is refused");
  check(await page.getByRole("button", { name: "Sign out", exact: true }).isVisible(), "this session stays signed in");
});

await step("cluster: refused to a user", async () => {
  const page = user;
  await page.getByRole("link", { name: "Cluster", exact: true }).click();
  await page.getByText("Not permitted").waitFor({ timeout: WAIT });
  check(/Forbidden/i.test(await page.getByRole("alert").textContent()), "the refusal is announced");
  check((await page.getByRole("heading", { name: /Members/ }).count()) === 0, "no cluster data is shown");
});

await step("cluster and admin as an admin", async () => {
  admin = await newPage();
  const page = admin;
  await signIn(page, adminEmail, adminPassword);
  await page.getByRole("link", { name: "Cluster", exact: true }).click();
  await page.getByRole("heading", { name: "Members (1)" }).waitFor({ timeout: WAIT });
  check(await page.getByText("(this node)").isVisible(), "this node is marked among the members");
  check(await page.getByRole("cell", { name: "session", exact: true }).isVisible(), "activations per kind are listed");
  // Live figures: the user's two chat turns are counted on this node.
  const turns = Number(await page.locator("#fig-turns").textContent());
  check(turns >= 2, `the live figures count the chat turns (${turns})`);
  const tokensToday = Number(await page.locator("#fig-tokens-today").textContent());
  check(tokensToday > 0, `the cluster's model usage today counts the turns' tokens (${tokensToday})`);
  check(/^\$\d+\.\d{4}$/.test(await page.locator("#fig-cost-today").textContent()), "the cluster's model cost today is shown");
  await page.waitForFunction(() => /^-?\d+\.\d\d$/.test(document.getElementById("fig-rate").textContent), null, { timeout: WAIT });
  check(true, "turns per second are computed from two reads");
  const first = await page.locator(".hint").first().textContent();
  await page.waitForFunction((was) => document.querySelector("main .hint").textContent !== was, first, { timeout: WAIT });
  check(true, "the cluster page refreshes by itself");
  await shot(page, "cluster");
  await page.getByRole("link", { name: "Admin", exact: true }).click();
  await page.getByRole("rowheader", { name: userEmail }).waitFor({ timeout: WAIT });
  await page.getByRole("cell", { name: "agent.create", exact: true }).first().waitFor({ timeout: WAIT });
  check(true, "the audit log lists the agent's creation");
  await page.getByRole("checkbox", { name: `premium role of ${userEmail}` }).check();
  await page.getByRole("button", { name: `Save roles of ${userEmail}` }).click();
  await page.getByRole("cell", { name: "user.roles.set" }).first().waitFor({ timeout: WAIT });
  check(true, "a role change is saved and audited");
  await shot(page, "admin");
});

await step("no page errors and no CSP violations", async () => {
  for (const [who, page] of [["user", user], ["admin", admin]]) {
    if (!page) continue;
    const violations = await page.evaluate(() => window.__cspViolations || 0);
    check(violations === 0, `${who}: no Content-Security-Policy violation`);
    check(page.problems.length === 0, `${who}: no page errors (${page.problems.join("; ")})`);
  }
});

await browser.close();
console.log(`# ${failures.length ? `FAILED: ${failures.join(", ")}` : "all passed"} in ${Date.now() - started} ms`);
process.exit(failures.length ? 1 : 0);
