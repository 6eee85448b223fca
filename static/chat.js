// ragship chat page: the entry module. It wires the parts in static/js/ together:
// api (fetch + CSRF), sse (event reader), markdown + citations (rendering), answer,
// conversations (list, URLs), composer (question box), feedback.

import { api, refusal, sendJson, session } from "./js/api.js";
import { readEvents } from "./js/sse.js";
import { $, element } from "./js/dom.js";
import { Answer, addQuestion } from "./js/answer.js";
import { addFeedback } from "./js/feedback.js";
import * as composer from "./js/composer.js";
import { conversationStarted, current, focusComposer, followUrl, loadConversations, newChat } from "./js/conversations.js";

let controller = null;

function showBudget(remaining) {
  $("budget").textContent = `Today: $${remaining} left (resets 00:00 UTC)`;
}

function adminMeta(answer, data) {
  if (!session.me.is_admin) return;  // tokens, cost and trace ids are for operators
  answer.meta(`${data.usage.input_tokens} + ${data.usage.output_tokens} tokens · $${data.cost_usd} · trace ${data.trace_id || answer.node.dataset.traceId}`);
}

function onEvent(answer, name, data) {
  if (name === "meta") {
    conversationStarted(data.conversation_id);
    answer.node.dataset.traceId = data.trace_id;
  } else if (name === "sources") answer.setSources(data.sources);
  else if (name === "token") answer.append(data.text);
  else if (name === "done") {
    answer.render();
    adminMeta(answer, data);
    showBudget(data.remaining_today_usd);
    addFeedback(answer.node, data.message_id);
  } else if (name === "error") {
    answer.render();
    answer.fail(data.message);
    addFeedback(answer.node, data.message_id);
  } else if (name === "retract") {
    answer.retract(data.message);
    showBudget(data.remaining_today_usd);
  }
}

async function ask(question) {
  const asked = addQuestion(question);
  const answer = new Answer();
  answer.node.classList.add("streaming");
  controller = new AbortController();
  composer.setBusy(true);
  try {
    const response = await sendJson("/api/chat", "POST", { message: question, conversation_id: current.id }, {
      headers: { Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok) {
      // Refused before it started: the question stays in the box to edit or resend.
      const { message, retryAfterS } = await refusal(response);
      asked.remove();
      answer.fail(message);
      if (retryAfterS) composer.waitFor(retryAfterS);
      return;
    }
    composer.clear();
    await readEvents(response, (name, data) => onEvent(answer, name, data));
  } catch (err) {
    answer.render();
    if (err.name === "AbortError") answer.fail("Stopped: this answer is incomplete.", "stopped");
    else answer.fail("The connection was lost. Please try again.");
  } finally {
    answer.node.classList.remove("streaming");
    answer.node.classList.add("complete");
    controller = null;
    composer.setBusy(false);
    focusComposer();
    loadConversations();
  }
}

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

function wireMenu() {
  const toggle = (open) => {
    document.body.classList.toggle("menu-open", open);
    $("menu").setAttribute("aria-expanded", String(open));
  };
  $("menu").addEventListener("click", () => toggle(!document.body.classList.contains("menu-open")));
  $("scrim").addEventListener("click", () => toggle(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("menu-open")) toggle(false);
  });
  $("conversations").addEventListener("click", (event) => { if (event.target.closest("a.open")) toggle(false); });
}

async function signOut() {
  await api("/auth/logout", { method: "POST" });
  window.location.href = "/auth/login";
}

async function start() {
  followUrl();  // first, so nothing typed while /api/me loads is wiped afterwards
  const response = await api("/api/me");
  if (!response.ok) return;
  session.me = await response.json();
  $("who").textContent = session.me.email;
  showBudget(session.me.budget.remaining_today_usd);
  if (session.me.max_message_chars) composer.setLimit(session.me.max_message_chars);
  $("admin-link").hidden = !session.me.is_admin;
  showStatusBanner();
  loadConversations();
}

// A question needs the CSRF token from /api/me: until it has arrived, Send keeps the text.
composer.wire({ onSubmit: (question) => session.me && ask(question), onStop: () => { controller?.abort(); focusComposer(); } });
$("new-chat").addEventListener("click", () => { newChat(); document.body.classList.remove("menu-open"); });
$("sign-out").addEventListener("click", signOut);
wireMenu();
start();
