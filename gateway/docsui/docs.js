// The /docs page: lists the operations of /openapi.json with a try-it form
// and the WebSocket frames of /asyncapi.json. Everything is built with DOM
// calls and textContent, never HTML strings, so nothing in the documents or
// in a response can inject markup. The bearer token lives in the page only.
'use strict';

const $ = (id) => document.getElementById(id);

// el makes an element with attributes and children (strings become text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// prose renders a description: `code` spans become <code>, links stay text.
function prose(text) {
  const p = el('p', { class: 'desc' });
  String(text || '').replace(/\[([^\]]+)\]\([^)]+\)/g, '$1').split('`').forEach((part, i) => {
    p.append(i % 2 ? el('code', null, part) : part);
  });
  return p;
}

// resolve follows a local $ref ("#/components/schemas/X") within doc.
function resolve(doc, schema) {
  let s = schema;
  for (let i = 0; s && s.$ref && i < 32; i++) {
    s = s.$ref.replace(/^#\//, '').split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
  }
  return s || {};
}

// example builds a sample value of schema, for the request body editor.
function example(doc, schema, depth = 0) {
  const s = resolve(doc, schema);
  if (depth > 6) return null;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  if (Array.isArray(s.allOf) && s.allOf.length) return example(doc, s.allOf[0], depth + 1);
  switch (Array.isArray(s.type) ? s.type[0] : s.type) {
    case 'object': {
      const out = {};
      for (const [k, v] of Object.entries(s.properties || {})) out[k] = example(doc, v, depth + 1);
      return out;
    }
    case 'array': return [example(doc, s.items || {}, depth + 1)];
    case 'integer': case 'number': return 0;
    case 'boolean': return false;
    case 'string': return s.format === 'date-time' ? new Date(0).toISOString() : '';
    default: return {};
  }
}

// expand replaces local $refs by their targets, for display.
function expand(doc, schema, depth = 0) {
  if (depth > 8 || schema === null || typeof schema !== 'object') return schema;
  if (schema.$ref) return expand(doc, resolve(doc, schema), depth + 1);
  if (Array.isArray(schema)) return schema.map((s) => expand(doc, s, depth + 1));
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = expand(doc, v, depth + 1);
  return out;
}

const pretty = (v) => JSON.stringify(v, null, 2);
const needsToken = (op) => Array.isArray(op.security) && op.security.length > 0 && op.security.every((r) => Object.keys(r).length > 0);

// tryIt is the form that sends one operation's request from the browser.
function tryIt(doc, method, path, op) {
  const form = el('form', { class: 'try' });
  const params = (op.parameters || []).map((p) => {
    const input = el('input', { name: p.name, placeholder: p.schema && p.schema.type, required: p.required && p.in === 'path' });
    form.append(el('label', null, `${p.in} ${p.name}${p.required ? ' (required)' : ''} `, input, p.description ? ` ${p.description}` : ''));
    return { p, input };
  });
  let body = null;
  const media = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  if (media) {
    body = el('textarea', { spellcheck: 'false', 'aria-label': 'request body' });
    body.value = pretty(example(doc, media.schema));
    form.append(el('label', null, 'JSON body'), body);
  }
  const out = el('div', { class: 'result' });
  form.append(el('button', { type: 'submit' }, `Send ${method.toUpperCase()} ${path}`), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const { p, input } of params) {
      if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(input.value));
      else if (p.in === 'query' && input.value !== '') query.set(p.name, input.value);
    }
    if ([...query].length) url += `?${query}`;
    const headers = { Accept: 'application/json, application/problem+json' };
    const token = $('token').value.trim();
    if (token && needsToken(op)) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers, credentials: 'omit', cache: 'no-store' };
    if (body && body.value.trim() !== '') {
      headers['Content-Type'] = 'application/json';
      init.body = body.value;
    }
    out.replaceChildren(el('p', null, `Sending ${init.method} ${url}…`));
    try {
      const res = await fetch(url, init);
      const text = await res.text();
      let shown = text;
      let json = null;
      try { json = JSON.parse(text); shown = pretty(json); } catch { /* not JSON: show as text */ }
      const shownHeaders = [...res.headers].filter(([k]) => /^(content-type|x-request-id|retry-after|location|ratelimit-)/i.test(k));
      const status = el('p', { class: res.ok ? 'status-ok' : 'status-err' }, el('b', null, `${res.status} ${res.statusText}`));
      out.replaceChildren(status, el('pre', null, shownHeaders.map(([k, v]) => `${k}: ${v}`).join('\n')), el('pre', null, shown));
      if (json && typeof json.access_token === 'string') {
        const use = el('button', { type: 'button' }, 'Use this access token');
        use.addEventListener('click', () => { $('token').value = json.access_token; });
        status.append(' ', use);
      }
    } catch (err) {
      out.replaceChildren(el('p', { class: 'status-err' }, `Request failed: ${err.message}`));
    }
  });
  return form;
}

// operation renders one operation as a collapsible entry.
function operation(doc, method, path, op) {
  const d = el('details', { 'data-search': `${method} ${path} ${op.summary || ''} ${(op.tags || []).join(' ')}`.toLowerCase() });
  d.append(el('summary', null, el('span', { class: `method ${method}` }, method), el('code', null, path), ' ', op.summary || '', needsToken(op) ? el('span', { class: 'badge', title: 'needs a bearer token' }, 'token') : ''));
  const body = el('div', { class: 'op' }, prose(op.description), el('p', null, 'operationId ', el('code', null, op.operationId || '')));
  if (op.parameters && op.parameters.length) {
    body.append(el('h4', null, 'Parameters'), el('table', null,
      el('tr', null, el('th', null, 'name'), el('th', null, 'in'), el('th', null, 'type'), el('th', null, 'required'), el('th', null, 'description')),
      op.parameters.map((p) => el('tr', null, el('td', null, el('code', null, p.name)), el('td', null, p.in),
        el('td', null, (p.schema && p.schema.type) || ''), el('td', null, p.required ? 'yes' : 'no'), el('td', null, p.description || '')))));
  }
  const media = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  if (media) body.append(el('h4', null, 'Request body'), el('pre', null, pretty(expand(doc, media.schema))));
  body.append(el('h4', null, 'Responses'), el('table', null, Object.entries(op.responses || {}).map(([code, r]) => {
    const content = Object.entries(r.content || {});
    return el('tr', null, el('td', null, el('b', null, code)), el('td', null, r.description || ''),
      el('td', null, content.map(([type, m]) => el('details', null, el('summary', null, type), el('pre', null, pretty(expand(doc, m.schema)))))));
  })));
  if (op['x-kowai-websocket']) {
    body.append(el('p', null, 'This route upgrades to a WebSocket; its frames are listed under ', el('a', { href: '#frames' }, 'WebSocket frames'), '.'));
  } else {
    body.append(el('h4', null, 'Try it'), tryIt(doc, method, path, op));
  }
  d.append(body);
  return d;
}

function renderOpenAPI(doc) {
  const root = $('ops');
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, ops] of Object.entries(doc.paths || {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = (op.tags && op.tags[0]) || 'Other';
      if (!byTag.has(tag)) byTag.set(tag, { tag: { name: tag }, ops: [] });
      byTag.get(tag).ops.push(operation(doc, method, path, op));
    }
  }
  root.append(el('h2', null, 'Operations'), prose(doc.info && doc.info.description));
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    root.append(el('section', { class: 'tag' }, el('h3', null, tag.name), tag.description ? prose(tag.description) : null, ops));
  }
  $('schemas').append(el('h2', null, 'Schemas'), Object.entries((doc.components && doc.components.schemas) || {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, s]) => el('details', null, el('summary', null, el('code', null, name)), el('pre', null, pretty(s)))));
}

function renderAsyncAPI(doc) {
  const root = $('frames');
  root.append(el('h2', { id: 'frames-title' }, 'WebSocket frames'), prose(doc.info && doc.info.description));
  const direction = {};
  for (const op of Object.values(doc.operations || {})) {
    for (const m of op.messages || []) direction[m.$ref.split('/').pop()] = op.action === 'receive' ? 'client → server' : 'server → client';
  }
  for (const [name, m] of Object.entries((doc.components && doc.components.messages) || {})) {
    const payload = resolve(doc, m.payload);
    root.append(el('details', null,
      el('summary', null, el('code', null, name), el('span', { class: 'dir' }, direction[name] || ''), ' ', m.summary || ''),
      el('div', { class: 'op' }, el('h4', null, 'Example'), el('pre', null, JSON.stringify(example(doc, payload))),
        el('h4', null, 'Schema'), el('pre', null, pretty(expand(doc, payload))))));
  }
}

async function load(url) {
  const res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'omit' });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  return res.json();
}

function filter() {
  const q = $('filter').value.trim().toLowerCase();
  for (const d of document.querySelectorAll('#ops details[data-search]')) d.hidden = q !== '' && !d.dataset.search.includes(q);
}

document.addEventListener('DOMContentLoaded', async () => {
  $('forget').addEventListener('click', () => { $('token').value = ''; });
  $('auth').addEventListener('submit', (ev) => ev.preventDefault());
  $('filter').addEventListener('input', filter);
  try {
    const [openapi, asyncapi] = await Promise.all([load('/openapi.json'), load('/asyncapi.json')]);
    renderOpenAPI(openapi);
    renderAsyncAPI(asyncapi);
    $('status').textContent = `${Object.values(openapi.paths || {}).reduce((n, ops) => n + Object.keys(ops).length, 0)} operations, ` +
      `${Object.keys((asyncapi.components && asyncapi.components.messages) || {}).length} WebSocket frame types.`;
  } catch (err) {
    $('status').textContent = `Could not load the API documents: ${err.message}`;
  }
});
