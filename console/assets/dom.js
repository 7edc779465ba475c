// Small DOM helpers. Text always goes in as text nodes: nothing here parses
// HTML, so no string from the API can become markup.

/**
 * h creates an element. attrs: "class", "for", aria-* and other attributes
 * as strings; "on<event>" functions become listeners; "props" assigns
 * properties. Children are nodes or strings (text nodes); null is skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "props") Object.assign(el, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

/** append adds children (nodes, strings, arrays of them) to el. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** clear removes every child of el and returns it. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

let uid = 0;
/** id returns a fresh element ID with the prefix. */
export function id(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** when formats an ISO time for people, or "" for none. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** duration formats the milliseconds between two ISO times, or "". */
export function duration(from, to) {
  if (!from) return "";
  const ms = (to ? new Date(to) : new Date()) - new Date(from);
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

// The live regions live in index.html, so screen readers know them before
// anything is announced.

/** announce says msg in the polite status region. */
export function announce(msg) {
  const el = document.getElementById("status");
  el.textContent = "";
  requestAnimationFrame(() => {
    el.textContent = msg;
  });
}

/** alertError shows and announces an error in the assertive region. */
export function alertError(msg) {
  const el = document.getElementById("errors");
  el.textContent = msg || "";
}

/** describe turns an error (an ApiError or other) into one line. */
export function describe(err) {
  if (!err) return "";
  const p = err.problem;
  if (p) {
    const parts = [p.title || `HTTP ${err.status}`];
    if (p.detail && p.detail !== p.title) parts.push(p.detail);
    for (const fe of err.fieldErrors || []) parts.push(`${fe.field}: ${fe.message}`);
    if (p.correlation_id) parts.push(`(correlation ID ${p.correlation_id})`);
    return parts.join(" — ");
  }
  return String(err.message || err);
}
