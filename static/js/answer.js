// One message in the conversation: a question shown as text, an answer rendered as safe
// Markdown with inline citations, re-rendered (at most once a frame) while it streams.

import { $, element } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { linkCitations, renderSources } from "./citations.js";

// How an answer that did not finish is labelled when it is shown again.
export function endedLabel(status) {
  if (!status || status === "ok") return null;
  if (status.startsWith("cancelled")) return { kind: "stopped", text: "Stopped: this answer is incomplete." };
  if (status === "refused") return { kind: "failed", text: "The model declined to answer this question." };
  if (status.startsWith("blocked")) return { kind: "failed", text: "This answer was withdrawn." };
  return { kind: "failed", text: "This answer failed before it was complete." };
}

export function clearHint() {
  document.querySelector("#messages .hint")?.remove();
}

export function addQuestion(text) {
  clearHint();
  const node = element("div", "msg user");
  node.append(element("div", "body", text));
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

export class Answer {
  constructor() {
    clearHint();
    this.node = element("div", "msg assistant");
    this.body = element("div", "body markdown");
    this.node.append(this.body);
    this.text = "";
    this.sources = [];
    this.pending = false;
    $("messages").append(this.node);
  }

  setSources(sources) { this.sources = sources || []; }

  append(text) {
    this.text += text;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.render(); });
  }

  render() {
    renderMarkdown(this.body, this.text);
    const cited = linkCitations(this.body, this.sources);
    if (!this.node.classList.contains("failed")) renderSources(this.node, this.sources, cited);
    if (this.node.classList.contains("streaming")) this.node.scrollIntoView({ block: "end" });
  }

  // An error or refusal: its message, and no sources under it.
  fail(message, kind = "failed") {
    this.node.classList.add(kind === "stopped" ? "stopped" : "failed");
    this.node.querySelector(".sources")?.remove();
    this.node.append(element("div", kind === "stopped" ? "notice" : "error", message));
  }

  // A guardrail withdrew the answer: what was shown goes, never kept.
  retract(message) {
    this.text = "";
    this.body.replaceChildren();
    this.node.classList.add("retracted");
    this.fail(message);
  }

  meta(text) { this.node.append(element("div", "meta", text)); }
}

// A stored answer, as the conversation API returns it.
export function showStoredAnswer(message) {
  const answer = new Answer();
  const ended = endedLabel(message.status);
  answer.setSources(ended && ended.kind === "failed" ? [] : message.sources);
  if (ended && ended.kind === "failed" && message.status.startsWith("blocked")) answer.text = "";
  else answer.text = message.content;
  answer.render();
  if (ended) answer.fail(ended.text, ended.kind);
  answer.node.classList.add("complete");
  return answer;
}
