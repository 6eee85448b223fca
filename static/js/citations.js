// Inline citations: "[n]" in a rendered answer becomes a link to source n with a preview
// (hover or keyboard focus on desktop; the first tap on a touch screen), and the sources
// list under the answer shows only the sources the answer cited.

import { element } from "./dom.js";
import { safeHref } from "./markdown.js";

const MARKER = /\[(\d{1,3})\]/g;
const SKIP = "a, pre, code";
let previews = 0;

// The section within the document, without the title that heading paths start with.
function sectionOf(source) {
  const title = source.title || "";
  let section = source.section || "";
  if (title && section.startsWith(`${title} › `)) section = section.slice(title.length + 3);
  return section === title ? "" : section;
}

export function sourceLabel(source) {
  const section = sectionOf(source);
  return section ? `${source.title || "Source"} — ${section}` : source.title || "Source";
}

function sourceUrl(source) {
  const href = safeHref(source.url);
  return href && href.startsWith("/") ? href : null;
}

function citationLink(source) {
  const wrap = element("span", "cite");
  const url = sourceUrl(source);
  const link = element(url ? "a" : "span", "citation", `[${source.n}]`);
  const preview = element("span", "cite-preview");
  preview.id = `cite-preview-${++previews}`;
  preview.setAttribute("role", "tooltip");
  preview.append(element("strong", "", source.title || "Source"));
  if (sectionOf(source)) preview.append(element("span", "", sectionOf(source)));
  if (url) {
    link.href = url;
    link.target = "_blank";
    link.rel = "noopener";
    link.setAttribute("aria-describedby", preview.id);
    link.addEventListener("click", (event) => {
      // On a touch screen there is no hover: the first tap shows the preview, the second opens.
      if (window.matchMedia("(hover: none)").matches && !wrap.classList.contains("open")) {
        event.preventDefault();
        document.querySelectorAll(".cite.open").forEach((other) => other.classList.remove("open"));
        wrap.classList.add("open");
      }
    });
  }
  wrap.append(link, preview);
  return wrap;
}

// Replace [n] markers in `container`'s text with citation links; returns the cited numbers.
export function linkCitations(container, sources) {
  const byNumber = new Map(sources.map((s) => [s.n, s]));
  const cited = new Set();
  const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    if (!walker.currentNode.parentElement.closest(SKIP)) texts.push(walker.currentNode);
  }
  for (const text of texts) {
    const value = text.nodeValue;
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of value.matchAll(MARKER)) {
      const source = byNumber.get(Number(match[1]));
      if (!source) continue;
      cited.add(source.n);
      parts.append(value.slice(last, match.index), citationLink(source));
      last = match.index + match[0].length;
    }
    if (last === 0) continue;
    parts.append(value.slice(last));
    text.replaceWith(parts);
  }
  return cited;
}

// The list of cited sources under an answer (none when nothing was cited).
export function renderSources(node, sources, cited) {
  node.querySelector(".sources")?.remove();
  const shown = sources.filter((s) => cited.has(s.n));
  if (!shown.length) return;
  const box = element("div", "sources");
  box.append(element("span", "sources-label", "Sources"));
  const list = element("ol");
  for (const source of shown) {
    const item = element("li");
    item.value = source.n;
    const url = sourceUrl(source);
    const link = element(url ? "a" : "span", "source-link", sourceLabel(source));
    if (url) { link.href = url; link.target = "_blank"; link.rel = "noopener"; }
    item.append(link);
    list.append(item);
  }
  box.append(list);
  node.querySelector(".body").after(box);
}

document.addEventListener("click", (event) => {
  if (!event.target.closest(".cite")) document.querySelectorAll(".cite.open").forEach((c) => c.classList.remove("open"));
});
