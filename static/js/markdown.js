// Markdown to safe HTML: marked parses, DOMPurify sanitizes, highlight.js colours code.
// Everything a model or a document says passes through render() before it is HTML.
// Raw HTML inside the Markdown is shown as text; links go only to http(s) or this site;
// images load only from this site (a remote image keeps its alt text and loads nothing).

import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight/highlight.min.js";
import { element, icon, ICONS } from "./dom.js";

const escapeHtml = (text) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const parser = new Marked({ gfm: true, async: false });
parser.use({ renderer: { html: (token) => escapeHtml(token.text) } });

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe", "frame", "object", "embed", "svg", "math", "video", "audio", "source", "link", "meta", "base"],
  FORBID_ATTR: ["style", "srcset", "ping", "formaction", "action"],
};

// A URL this page may link to: same-site (returned as a path) or absolute http(s); else null.
export function safeHref(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  let url;
  try { url = new URL(value, window.location.href); } catch (_) { return null; }
  if (url.origin === window.location.origin) return url.pathname + url.search + url.hash;
  return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
}

function sameSite(value) {
  const href = safeHref(value);
  return href !== null && href.startsWith("/");
}

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = safeHref(node.getAttribute("href"));
    if (href === null) node.removeAttribute("href");
    else {
      node.setAttribute("href", href);
      if (!href.startsWith("/")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    }
  } else if (node.tagName === "IMG" && !sameSite(node.getAttribute("src"))) {
    node.removeAttribute("src");
    node.classList.add("blocked-image");
    node.setAttribute("alt", `[image not loaded: ${node.getAttribute("alt") || "remote image"}]`);
  }
});

// Sanitized HTML for a Markdown text (possibly incomplete, while it streams).
export function toSafeHtml(markdown) {
  return DOMPurify.sanitize(parser.parse(markdown), PURIFY);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = element("textarea");
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function copyButton(code) {
  const button = element("button", "copy-code");
  button.type = "button";
  button.append(icon(ICONS.copy), element("span", "", "Copy"));
  button.title = "Copy code";
  button.addEventListener("click", async () => {
    await copyText(code.textContent);
    button.lastChild.textContent = "Copied";
  });
  return button;
}

// Highlight code blocks, give each a copy button, and let wide tables scroll on their own.
export function decorate(container) {
  for (const code of container.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    if (!code.dataset.highlighted) hljs.highlightElement(code);
    const block = element("div", "code-block");
    pre.replaceWith(block);
    block.append(copyButton(code), pre);
    pre.tabIndex = 0;  // scrollable regions must be reachable by keyboard
  }
  for (const table of container.querySelectorAll("table")) {
    const wrap = element("div", "table-wrap");
    wrap.tabIndex = 0;
    table.replaceWith(wrap);
    wrap.append(table);
  }
}

hljs.configure({ ignoreUnescapedHTML: true });

// Render Markdown into `container` (replacing what was there).
export function renderMarkdown(container, markdown) {
  container.innerHTML = toSafeHtml(markdown);
  decorate(container);
}
