// Thumbs up / down under an answer: icon buttons with accessible names and a pressed
// state. Thumbs down opens a small form (reason, optional comment, Send); nothing is
// recorded until Send.

import { sendJson } from "./api.js";
import { element, iconButton } from "./dom.js";

const REASONS = ["Wrong or inaccurate", "Did not answer the question", "Wrong or missing sources", "Other"];

async function record(messageId, rating, comment) {
  const response = await sendJson(`/api/messages/${messageId}/feedback`, "POST", { rating, comment });
  return response.ok;
}

function downForm(box, messageId, onSent) {
  const form = element("form", "feedback-form");
  const reasonId = `reason-${messageId}`;
  const commentId = `comment-${messageId}`;
  const reasonLabel = element("label", "", "What went wrong?");
  reasonLabel.htmlFor = reasonId;
  const reason = element("select", "reason");
  reason.id = reasonId;
  for (const text of REASONS) reason.append(new Option(text, text));
  const commentLabel = element("label", "", "Comment (optional)");
  commentLabel.htmlFor = commentId;
  const comment = element("textarea", "comment");
  comment.id = commentId;
  comment.rows = 2;
  comment.maxLength = 1900;
  const send = element("button", "send-feedback", "Send");
  send.type = "submit";
  const cancel = element("button", "cancel-feedback", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => { form.remove(); box.querySelector(".thumb.down").focus(); });
  form.append(reasonLabel, reason, commentLabel, comment, element("span", "actions"));
  form.lastChild.append(send, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = comment.value.trim();
    if (await record(messageId, "down", text ? `${reason.value}: ${text}` : reason.value)) {
      form.remove();
      onSent();
    }
  });
  return form;
}

// Add the feedback controls to an answer node; `rating` is "up", "down" or null.
export function addFeedback(node, messageId, rating = null) {
  if (!messageId || node.querySelector(".feedback")) return;
  const box = element("div", "feedback");
  const up = iconButton("up", "Good answer", "thumb up");
  const down = iconButton("down", "Bad answer", "thumb down");
  const thanks = element("span", "thanks muted");
  thanks.setAttribute("role", "status");
  const show = (value) => {
    if (value) box.dataset.rating = value;
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
  };
  show(rating);
  up.addEventListener("click", async () => {
    box.querySelector(".feedback-form")?.remove();
    if (await record(messageId, "up", "")) { show("up"); thanks.textContent = "Thanks for the feedback."; }
  });
  down.addEventListener("click", () => {
    if (box.querySelector(".feedback-form")) return;
    const form = downForm(box, messageId, () => { show("down"); thanks.textContent = "Thanks for the feedback."; down.focus(); });
    box.append(form);
    form.querySelector("select").focus();
  });
  box.append(up, down, thanks);
  node.append(box);
}
