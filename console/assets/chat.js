// Chat: the conversation list (newest first, paged), a conversation's
// history (paged upward), an agent picker and the message box. Replies
// stream token by token over Server-Sent Events (POST /api/v1/chat/message
// with Accept: text/event-stream); a failed turn can be retried with the
// same Idempotency-Key; each reply takes a thumbs up or down.

import * as client from "./api.js";
import { h, clear, alertError, announce, describe, when } from "./dom.js";
import { field } from "./forms.js";
import { render } from "./markdown.js";

const PAGE = 20;

export async function chatView(root, c, conversationId) {
  document.title = "Chat · kowai console";
  let current = conversationId || "";
  let convCursor = "";
  let historyCursor = "";
  const aborts = new Set();

  const convList = h("ul", { class: "conversations" });
  const moreConvs = h("button", { type: "button", hidden: true }, "More conversations");
  const newConv = h("button", { type: "button", class: "primary" }, "New conversation");
  const aside = h("nav", { class: "card side", "aria-label": "Conversations" }, h("h2", {}, "Conversations"), newConv, convList, moreConvs);

  const title = h("h1", {}, "New conversation");
  const earlier = h("button", { type: "button", hidden: true }, "Load earlier messages");
  const transcript = h("ol", { class: "transcript", "aria-label": "Messages" });
  const agent = field("Agent", h("select", {}));
  const message = field(
    "Message",
    h("textarea", { rows: 3, placeholder: "Write a message; Enter sends, Shift+Enter adds a line" }),
  );
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const form = h("form", { class: "composer", novalidate: true }, agent.row, message.row, send);
  const pane = h("section", { class: "card chat", "aria-labelledby": "chat-title" }, title, earlier, transcript, form);
  title.id = "chat-title";
  root.append(h("div", { class: "chat-layout" }, aside, pane));

  // Agents for the picker: the user's and the built-ins.
  let agents = [];
  try {
    agents = (await client.api("GET", "/api/v1/agents?limit=200")).agents;
  } catch (err) {
    c.fail(err);
  }
  for (const a of agents) agent.control.append(h("option", { value: a.id }, a.owner_id ? a.name : `${a.name} (built-in)`));
  const builtinChat = agents.find((a) => a.name === "chat" && !a.owner_id);
  if (builtinChat) agent.control.value = builtinChat.id;

  async function loadConversations(more) {
    const page = await client.api("GET", `/api/v1/chat/conversations${client.query({ limit: PAGE, cursor: more ? convCursor : "" })}`);
    if (!more) clear(convList);
    for (const conv of page.conversations) {
      const link = h("a", { href: `#/chat/${conv.id}` }, conv.title || "(untitled)");
      if (conv.id === current) link.setAttribute("aria-current", "true");
      convList.append(h("li", {}, link, h("span", { class: "hint" }, when(conv.updated_at))));
    }
    if (!more && page.conversations.length === 0) convList.append(h("li", { class: "hint" }, "No conversations yet."));
    convCursor = page.next_cursor;
    moreConvs.hidden = !convCursor;
  }

  function messageItem(m) {
    const body = h("div", { class: "text" });
    if (m.role === "assistant") body.append(render(m.content));
    else body.textContent = m.content;
    const li = h("li", { class: `msg ${m.role}` }, h("span", { class: "who" }, m.role === "assistant" ? "Agent" : m.role === "user" ? "You" : m.role), body);
    if (m.role === "assistant" && m.id) li.append(feedback(m.id));
    return li;
  }

  function feedback(messageId) {
    const up = h("button", { type: "button", class: "thumb", "aria-label": "Good reply", "aria-pressed": "false" }, "+ Good");
    const down = h("button", { type: "button", class: "thumb", "aria-label": "Bad reply", "aria-pressed": "false" }, "− Bad");
    const rate = async (rating, btn, other) => {
      try {
        await client.api("POST", "/api/v1/chat/feedback", { message_id: messageId, rating });
        btn.setAttribute("aria-pressed", "true");
        other.setAttribute("aria-pressed", "false");
        announce(rating > 0 ? "Thanks: rated good" : "Thanks: rated bad");
      } catch (err) {
        c.fail(err);
      }
    };
    up.addEventListener("click", () => rate(1, up, down));
    down.addEventListener("click", () => rate(-1, down, up));
    return h("div", { class: "feedback", role: "group", "aria-label": "Feedback" }, up, down);
  }

  async function loadHistory(more) {
    if (!current) return;
    const page = await client.api(
      "GET",
      `/api/v1/chat/history${client.query({ conversation_id: current, order: "desc", limit: PAGE, cursor: more ? historyCursor : "" })}`,
    );
    const items = page.messages.slice().reverse().map(messageItem);
    if (more) transcript.prepend(...items);
    else transcript.replaceChildren(...items);
    historyCursor = page.next_cursor;
    earlier.hidden = !historyCursor;
  }

  async function openConversation() {
    if (!current) return;
    try {
      const conv = await client.api("GET", `/api/v1/chat/conversations/${encodeURIComponent(current)}`);
      title.textContent = conv.title || "Conversation";
      if ([...agent.control.options].some((o) => o.value === conv.agent_id)) agent.control.value = conv.agent_id;
      agent.control.disabled = true;
      await loadHistory(false);
    } catch (err) {
      c.fail(err);
    }
  }

  // turn sends one message and streams its reply into the transcript.
  async function turn(content, key, li) {
    const text = h("div", { class: "text streaming", "aria-busy": "true" });
    const status = h("p", { class: "turn-status" }, "Thinking…");
    const reply = h("li", { class: "msg assistant" }, h("span", { class: "who" }, "Agent"), text, status);
    if (li) li.replaceWith(reply);
    else transcript.append(reply);
    reply.scrollIntoView({ block: "end" });
    const body = { content };
    if (current) body.conversation_id = current;
    else if (agent.control.value) body.agent_id = agent.control.value;
    const abort = new AbortController();
    aborts.add(abort);
    let done = null;
    let failure = null;
    try {
      await client.stream("POST", "/api/v1/chat/message", {
        body,
        headers: { "Idempotency-Key": key },
        signal: abort.signal,
        onEvent: ({ event, data }) => {
          if (event === "token") {
            // One text node per piece: the reply grows as it streams.
            text.append(document.createTextNode(data.delta));
            status.textContent = "Writing…";
          } else if (event === "restart") {
            text.replaceChildren();
            status.textContent = `Starting again (attempt ${data.attempt})…`;
          } else if (event === "done") done = data;
          else if (event === "error") failure = new client.ApiError(data.status || 500, data);
        },
      });
      if (!done && !failure) failure = new Error("the reply stream ended before the reply was complete");
    } catch (err) {
      if (err.name === "AbortError") return;
      failure = err;
    } finally {
      aborts.delete(abort);
    }
    text.removeAttribute("aria-busy");
    text.classList.remove("streaming");
    if (failure) {
      status.textContent = `Failed: ${describe(failure)}`;
      status.classList.add("failed");
      const retry = h("button", { type: "button" }, "Retry");
      retry.addEventListener("click", () => turn(content, key, reply));
      reply.append(retry);
      alertError(`The reply failed: ${describe(failure)}`);
      retry.focus();
      return;
    }
    text.replaceChildren(render(done.response));
    status.remove();
    reply.append(feedback(done.message_id));
    announce("Reply received");
    if (!current) {
      current = done.conversation_id;
      history.replaceState(null, "", `#/chat/${current}`);
      agent.control.disabled = true;
      title.textContent = "Conversation";
    }
    loadConversations(false).catch(c.fail);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const content = message.control.value;
    if (!content.trim()) {
      message.setError("Write a message first.");
      message.control.focus();
      return;
    }
    message.setError("");
    alertError("");
    transcript.querySelector(".empty")?.remove();
    transcript.append(messageItem({ role: "user", content }));
    message.control.value = "";
    turn(content, client.newKey(), null);
    message.control.focus();
  });
  message.control.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  newConv.addEventListener("click", () => c.go("#/chat"));
  moreConvs.addEventListener("click", () => loadConversations(true).catch(c.fail));
  earlier.addEventListener("click", () => loadHistory(true).catch(c.fail));

  await Promise.all([loadConversations(false).catch(c.fail), openConversation()]);
  if (!current) transcript.append(h("li", { class: "hint empty" }, "Pick an agent and write a message to start a conversation."));
  message.control.focus();
  return () => {
    for (const a of aborts) a.abort();
  };
}
