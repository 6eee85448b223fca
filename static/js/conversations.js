// The user's conversations: the list in the sidebar, one URL per conversation (/c/<id>)
// kept in the browser history, reopening with thumbs and end states, rename and delete.

import { api, sendJson } from "./api.js";
import { $, element, iconButton } from "./dom.js";
import { addQuestion, showStoredAnswer } from "./answer.js";
import { addFeedback } from "./feedback.js";

export const current = { id: null };
const PATH = /^\/c\/([0-9a-f-]{36})$/;

function emptyState(text) {
  $("messages").replaceChildren(element("p", "hint", text));
}

export function focusComposer() {
  $("question").focus();
}

// Called when the server names the conversation a new question started.
export function conversationStarted(id) {
  if (current.id === id) return;
  current.id = id;
  history.pushState({ id }, "", `/c/${id}`);
}

export function newChat({ push = true } = {}) {
  current.id = null;
  if (push && window.location.pathname !== "/") history.pushState({ id: null }, "", "/");
  emptyState("New conversation. Ask away.");
  markActive();
  focusComposer();
}

function markActive() {
  for (const link of document.querySelectorAll("#conversations a.open")) {
    const active = link.dataset.id === current.id;
    link.classList.toggle("active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

export async function openConversation(id, { push = true } = {}) {
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (response.status === 404) {
    current.id = null;
    history.replaceState({ id: null }, "", "/");
    emptyState("That conversation does not exist any more. Ask a new question.");
    markActive();
    return;
  }
  if (!response.ok) return;
  current.id = id;
  if (push && window.location.pathname !== `/c/${id}`) history.pushState({ id }, "", `/c/${id}`);
  $("messages").replaceChildren();
  for (const message of (await response.json()).messages) {
    if (message.role === "user") addQuestion(message.content);
    else addFeedback(showStoredAnswer(message).node, message.id, message.rating || null);
  }
  document.body.classList.remove("menu-open");
  markActive();
}

async function rename(item, conversation) {
  const form = element("form", "rename");
  const input = element("input");
  input.value = conversation.title;
  input.maxLength = 80;
  input.setAttribute("aria-label", "Conversation title");
  form.append(input);
  item.replaceChildren(form);
  input.focus();
  input.select();
  const done = async (save) => {
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      await sendJson(`/api/conversations/${conversation.id}`, "PATCH", { title });
    }
    await loadConversations();
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); done(true); });
  input.addEventListener("keydown", (event) => { if (event.key === "Escape") { event.stopPropagation(); done(false); } });
  input.addEventListener("blur", () => done(true), { once: true });
}

async function remove(conversation) {
  const sure = window.confirm(`Delete "${conversation.title}"? Its messages are deleted for good.`);
  if (!sure) return;
  const response = await api(`/api/conversations/${conversation.id}`, { method: "DELETE" });
  if (!response.ok) return;
  if (current.id === conversation.id) newChat();
  await loadConversations();
}

function listItem(conversation) {
  const item = element("li");
  const link = element("a", "open", conversation.title);
  link.href = `/c/${conversation.id}`;
  link.dataset.id = conversation.id;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openConversation(conversation.id);
  });
  const renameButton = iconButton("edit", `Rename "${conversation.title}"`, "rename-conversation");
  renameButton.addEventListener("click", () => rename(item, conversation));
  const deleteButton = iconButton("trash", `Delete "${conversation.title}"`, "delete-conversation");
  deleteButton.addEventListener("click", () => remove(conversation));
  item.append(link, renameButton, deleteButton);
  return item;
}

export async function loadConversations() {
  const response = await api("/api/conversations");
  if (!response.ok) return;
  const conversations = await response.json();
  $("conversations").replaceChildren(...conversations.map(listItem));
  markActive();
}

// Show what the address bar names: a conversation, or a new chat.
export function followUrl() {
  const match = PATH.exec(window.location.pathname);
  if (match) openConversation(match[1], { push: false });
  else newChat({ push: false });
}

window.addEventListener("popstate", followUrl);
