// ragship chat page. Everything the model or a document says is inserted as text
// (textContent), never as HTML, so neither can inject markup into the page.
"use strict";

const $ = (id) => document.getElementById(id);
let conversationId = null;
let controller = null;
let me = null;

function toSignIn() {
  window.location.href = "/auth/login?next=" + encodeURIComponent(window.location.pathname);
}

async function api(path, options = {}) {
  // Every state-changing call carries the session's CSRF token.
  const headers = { ...(options.headers || {}) };
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = me ? me.csrf_token : "";
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) toSignIn();
  return response;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function addMessage(role, text) {
  const hint = document.querySelector("#messages .hint");
  if (hint) hint.remove();
  const node = element("div", `msg ${role}`);
  const body = element("div", "body", text || "");
  node.append(body);
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function safeUrl(url) {
  // Only same-site relative links are rendered as links.
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : null;
}

function renderSources(node, sources) {
  node.querySelector(".sources")?.remove();
  if (!sources.length) return;
  const box = element("div", "sources", "Sources: ");
  for (const s of sources) {
    const label = `[${s.n}] ${s.section || s.title}`;
    const url = safeUrl(s.url);
    const link = url ? element("a", "citation", label) : element("span", "citation", label);
    if (url) { link.href = url; link.target = "_blank"; link.rel = "noopener"; }
    box.append(link);
  }
  node.append(box);
}

function addFeedback(node, messageId) {
  if (!messageId || node.querySelector(".feedback")) return;
  const box = element("div", "feedback");
  const comment = element("input", "comment");
  comment.placeholder = "What was wrong? (optional)";
  comment.hidden = true;
  const send = async (rating) => {
    const response = await api(`/api/messages/${messageId}/feedback`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rating, comment: comment.value }),
    });
    if (response.ok) {
      box.dataset.rating = rating;
      thanks.textContent = "Thanks for the feedback.";
    }
  };
  const up = element("button", "thumb up", "👍");
  up.title = "Good answer";
  up.addEventListener("click", () => send("up"));
  const down = element("button", "thumb down", "👎");
  down.title = "Bad answer";
  down.addEventListener("click", () => {
    if (comment.hidden) { comment.hidden = false; comment.focus(); }
    send("down");
  });
  comment.addEventListener("change", () => send("down"));
  const thanks = element("span", "muted");
  box.append(up, down, comment, thanks);
  node.append(box);
}

function showError(node, message) {
  node.append(element("div", "error", message));
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (_) { /* not JSON */ }
  return `Request failed (${response.status}).`;
}

async function ask(question) {
  addMessage("user", question);
  const node = addMessage("assistant", "");
  node.classList.add("streaming");
  const body = node.querySelector(".body");
  controller = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  try {
    const response = await api("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ message: question, conversation_id: conversationId }),
      signal: controller.signal,
    });
    if (!response.ok) { showError(node, await errorMessage(response)); return; }
    await readEvents(response, (name, data) => {
      if (name === "meta") { conversationId = data.conversation_id; node.dataset.traceId = data.trace_id; }
      else if (name === "sources") renderSources(node, data.sources);
      else if (name === "token") { body.textContent += data.text; node.scrollIntoView({ block: "end" }); }
      else if (name === "done") {
        node.append(element("div", "meta", `${data.usage.input_tokens} + ${data.usage.output_tokens} tokens · $${data.cost_usd} · trace ${node.dataset.traceId}`));
        showBudget(data.remaining_today_usd);
        addFeedback(node, data.message_id);
      }
      else if (name === "error") { showError(node, data.message); addFeedback(node, data.message_id); }
      else if (name === "retract") {
        // A guardrail stopped the answer: what was shown is replaced, never kept.
        body.textContent = "";
        node.querySelector(".sources")?.remove();
        node.classList.add("retracted");
        showError(node, data.message);
        showBudget(data.remaining_today_usd);
      }
    });
  } catch (err) {
    if (err.name === "AbortError") showError(node, "Stopped.");
    else showError(node, "The connection was lost. Please try again.");
  } finally {
    node.classList.remove("streaming");
    node.classList.add("complete");
    controller = null;
    $("send").hidden = false;
    $("stop").hidden = true;
    loadConversations();
  }
}

async function loadConversations() {
  const response = await api("/api/conversations");
  if (!response.ok) return;
  const list = $("conversations");
  list.replaceChildren();
  for (const c of await response.json()) {
    const link = element("a", c.id === conversationId ? "active" : "", c.title);
    link.href = "#";
    link.addEventListener("click", (e) => { e.preventDefault(); openConversation(c.id); });
    const item = element("li");
    item.append(link);
    list.append(item);
  }
}

async function openConversation(id) {
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (!response.ok) return;
  conversationId = id;
  $("messages").replaceChildren();
  for (const m of (await response.json()).messages) {
    const node = addMessage(m.role, m.content);
    if (m.role === "assistant") { renderSources(node, m.sources || []); addFeedback(node, m.id); }
  }
  loadConversations();
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || controller) return;
  $("question").value = "";
  ask(question);
});
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("ask").requestSubmit(); }
});
$("stop").addEventListener("click", () => controller?.abort());
$("new-chat").addEventListener("click", () => {
  conversationId = null;
  $("messages").replaceChildren(element("p", "hint", "New conversation. Ask away."));
  loadConversations();
});
async function showStatusBanner() {
  const response = await fetch("/api/status");
  if (!response.ok) return;
  const status = await response.json();
  let message = "";
  if (status.paused) message = `The assistant is ${status.paused_reason}.`;
  else if (status.overall !== "operational") {
    const llm = status.components.find((c) => c.name === "llm_upstream");
    message = llm && llm.state !== "operational"
      ? "The upstream provider is degraded: answers may fail. See the status page."
      : "Some parts of the service are degraded. See the status page.";
  } else if (status.provider && ["degraded", "down"].includes(status.provider.state)) {
    message = status.provider.headline;
  }
  $("banner").textContent = message;
  if (message) {
    const link = element("a", "", " Status page");
    link.href = "/status";
    $("banner").append(link);
  }
  $("banner").hidden = !message;
}

function showBudget(remaining) {
  $("budget").textContent = `Today: $${remaining} left (resets 00:00 UTC)`;
}

async function signOut() {
  await api("/auth/logout", { method: "POST" });
  window.location.href = "/auth/login";
}

async function start() {
  const response = await api("/api/me");
  if (!response.ok) return;
  me = await response.json();
  $("who").textContent = me.email;
  showBudget(me.budget.remaining_today_usd);
  showStatusBanner();
  $("admin-link").hidden = !me.is_admin;
  loadConversations();
}

$("sign-out").addEventListener("click", signOut);
start();
