// The console's client of kowai's public API: tokens, JSON requests with a
// refresh on 401, and Server-Sent Events read from fetch (EventSource cannot
// send an Authorization header).

const STORE = "kowai.console.tokens";

/** ApiError is a refused request: its status and RFC 9457 problem. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
  /** fieldErrors returns the problem's field errors ({field, message}). */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

let tokens = load();
let refreshTimer = 0;
let refreshing = null;
const listeners = new Set();

function load() {
  try {
    const raw = sessionStorage.getItem(STORE);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function save(t) {
  tokens = t;
  if (t) sessionStorage.setItem(STORE, JSON.stringify(t));
  else sessionStorage.removeItem(STORE);
  schedule();
  for (const fn of listeners) fn(Boolean(t));
}

/** onAuthChange calls fn(signedIn) whenever the tokens change. */
export function onAuthChange(fn) {
  listeners.add(fn);
}

/** signedIn reports whether the console holds tokens. */
export function signedIn() {
  return Boolean(tokens);
}

// schedule refreshes the access token in the background at about 80% of
// its lifetime, so a user who keeps the page open stays signed in.
function schedule() {
  clearTimeout(refreshTimer);
  if (!tokens) return;
  const lifetime = (tokens.expires_in || 900) * 1000;
  const due = tokens.obtained + lifetime * 0.8 - Date.now();
  refreshTimer = setTimeout(() => {
    refresh().catch(() => {});
  }, Math.max(1000, due));
}

function stamp(pair) {
  return { ...pair, obtained: Date.now() };
}

/** refresh exchanges the refresh token for a new pair (once at a time). */
export function refresh() {
  if (!tokens) return Promise.reject(new ApiError(401, { title: "Not signed in" }));
  if (!refreshing) {
    const spent = tokens.refresh_token;
    refreshing = raw("POST", "/api/v1/auth/refresh", { refresh_token: spent }, false)
      .then((pair) => save(stamp(pair)))
      .catch((err) => {
        if (err instanceof ApiError && err.status === 401) save(null);
        throw err;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

async function problemOf(res) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return { title: res.statusText || `HTTP ${res.status}`, detail: text.slice(0, 200) };
  }
}

async function raw(method, path, body, withToken, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (withToken && tokens) h.Authorization = `Bearer ${tokens.access_token}`;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { title: "The node did not answer", detail: String(err.message || err) });
  }
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * api sends an authenticated JSON request and returns the decoded answer.
 * A 401 refreshes the tokens once and sends the request again.
 */
export async function api(method, path, body, headers) {
  try {
    return await raw(method, path, body, true, headers);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401 || !tokens) throw err;
    await refresh();
    return raw(method, path, body, true, headers);
  }
}

/** signIn logs in with email and password and keeps the tokens. */
export async function signIn(email, password) {
  save(stamp(await raw("POST", "/api/v1/auth/login", { email, password }, false)));
}

/** signInAppwrite exchanges an Appwrite JWT for kowai tokens. */
export async function signInAppwrite(jwt) {
  save(stamp(await raw("POST", "/api/v1/auth/appwrite", { jwt }, false)));
}

/** register creates an account (then sign in). */
export function register(email, password, name) {
  return raw("POST", "/api/v1/auth/register", { email, password, name }, false);
}

/** signOut revokes the session on the node and forgets the tokens. */
export async function signOut() {
  try {
    if (tokens) await api("POST", "/api/v1/auth/logout", {});
  } finally {
    save(null);
  }
}

/** forget drops the tokens without asking the node (a refused session). */
export function forget() {
  save(null);
}

/**
 * stream sends a request whose answer is Server-Sent Events and calls
 * onEvent({event, data, id}) for each, data parsed as JSON. It resolves when
 * the stream ends; a refusal before the stream starts throws an ApiError.
 * lastEventId, when set, is sent as Last-Event-ID.
 */
export async function stream(method, path, { body, headers = {}, onEvent, signal, lastEventId } = {}) {
  const open = async () => {
    const h = { Accept: "text/event-stream", ...headers };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (tokens) h.Authorization = `Bearer ${tokens.access_token}`;
    if (lastEventId) h["Last-Event-ID"] = lastEventId;
    return fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal });
  };
  let res;
  try {
    res = await open();
    if (res.status === 401 && tokens) {
      await refresh();
      res = await open();
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
    if (err instanceof ApiError) throw err;
    throw new ApiError(0, { title: "The node did not answer", detail: String(err.message || err) });
  }
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { event: "message", data: [], id: "" };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (ev.data.length) {
          const text = ev.data.join("\n");
          let data;
          try {
            data = JSON.parse(text);
          } catch {
            data = text;
          }
          onEvent({ event: ev.event, data, id: ev.id });
        }
        ev = { event: "message", data: [], id: "" };
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") ev.event = val;
        else if (field === "data") ev.data.push(val);
        else if (field === "id") ev.id = val;
      }
    }
  }
}

/**
 * newKey returns a random idempotency key (a version 4 UUID). It does not
 * use crypto.randomUUID, which browsers offer only to secure contexts (a
 * node reached over plain HTTP on another host is not one).
 */
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** query builds "?a=b&..." from the defined, non-empty values of params. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

schedule();
