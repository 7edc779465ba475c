// A small, safe Markdown renderer for model replies: it builds DOM nodes and
// sets every piece of text with text nodes, so markup in a reply (such as
// <img onerror=...>) shows as text. It knows paragraphs, headings, fenced
// code, lists, block quotes, inline code, bold, italic and http(s) links.

import { h } from "./dom.js";

/** render returns a DocumentFragment of the Markdown text src. */
export function render(src) {
  const frag = document.createDocumentFragment();
  const lines = String(src ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+-]*)\s*$/);
    if (fence) {
      const code = [];
      i += 1;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      i += 1;
      const c = h("code", {}, code.join("\n"));
      if (fence[1]) c.dataset.lang = fence[1];
      frag.append(h("pre", {}, c));
      continue;
    }
    if (/^\s*$/.test(line)) {
      i += 1;
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      // Replies sit under the page's headings: # becomes h4 at most.
      const level = Math.min(6, heading[1].length + 3);
      frag.append(inline(h(`h${level}`), heading[2]));
      i += 1;
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      const ordered = /^\s*\d+[.)]\s+/.test(line);
      const list = h(ordered ? "ol" : "ul");
      while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
        list.append(inline(h("li"), lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, "")));
        i += 1;
      }
      frag.append(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ""));
      const q = h("blockquote");
      q.append(render(quoted.join("\n")));
      frag.append(q);
      continue;
    }
    const para = [];
    while (
      i < lines.length &&
      !/^\s*$/.test(lines[i]) &&
      !/^\s*```/.test(lines[i]) &&
      !/^#{1,6}\s/.test(lines[i]) &&
      !/^\s*([-*+]|\d+[.)])\s+/.test(lines[i]) &&
      !/^\s*>/.test(lines[i])
    ) {
      para.push(lines[i++]);
    }
    const p = h("p");
    para.forEach((l, n) => {
      if (n > 0) p.append(h("br"));
      inline(p, l);
    });
    frag.append(p);
  }
  return frag;
}

const INLINE = /`([^`]+)`|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)/;

// inline appends text with inline markup to el and returns el.
function inline(el, text) {
  let rest = text;
  while (rest) {
    const m = rest.match(INLINE);
    if (!m) {
      el.append(document.createTextNode(rest));
      break;
    }
    if (m.index > 0) el.append(document.createTextNode(rest.slice(0, m.index)));
    if (m[1] !== undefined) el.append(h("code", {}, m[1]));
    else if (m[2] !== undefined || m[3] !== undefined) el.append(inline(h("strong"), m[2] ?? m[3]));
    else if (m[4] !== undefined || m[5] !== undefined) el.append(inline(h("em"), m[4] ?? m[5]));
    else el.append(link(m[6], m[7]));
    rest = rest.slice(m.index + m[0].length);
  }
  return el;
}

// link is an anchor for http(s) URLs only; anything else (javascript:,
// data:) stays text.
function link(label, href) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return document.createTextNode(`[${label}](${href})`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return document.createTextNode(`[${label}](${href})`);
  return h("a", { href: url.href, rel: "noopener noreferrer nofollow", target: "_blank" }, label);
}
