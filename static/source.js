// A source document's page: each passage's Markdown rendered through the sanitizer
// (static/js/markdown.js), and the cited passage (the URL's #anchor) brought into view.

import { renderMarkdown } from "./js/markdown.js";

for (const pre of document.querySelectorAll("pre.passage")) {
  const passage = document.createElement("div");
  passage.className = "passage markdown";
  renderMarkdown(passage, pre.textContent);
  pre.replaceWith(passage);
}
const target = window.location.hash && document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
if (target) target.scrollIntoView({ block: "start" });
