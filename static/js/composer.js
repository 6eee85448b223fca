// The question box: a character counter near the limit (Send disabled over it), a live
// countdown while rate limited, Enter to send, Esc to stop a stream.

import { $ } from "./dom.js";

const state = { maxChars: 4000, waitUntil: 0, timer: null, busy: false };

function update() {
  const length = $("question").value.length;
  const counter = $("counter");
  const near = length >= state.maxChars * 0.8;
  counter.hidden = !near;
  counter.textContent = `${length} / ${state.maxChars}`;
  counter.classList.toggle("over", length > state.maxChars);
  const waiting = Date.now() < state.waitUntil;
  $("send").disabled = length > state.maxChars || waiting;
}

export function setLimit(maxChars) {
  state.maxChars = maxChars;
  update();
}

export function setBusy(busy) {
  state.busy = busy;
  $("send").hidden = busy;
  $("stop").hidden = !busy;
}

// Refused for `seconds`: count down, with Send disabled until it reaches zero.
export function waitFor(seconds) {
  state.waitUntil = Date.now() + seconds * 1000;
  clearInterval(state.timer);
  const tick = () => {
    const left = Math.ceil((state.waitUntil - Date.now()) / 1000);
    $("wait").hidden = left <= 0;
    const minutes = Math.floor(left / 60);
    const when = minutes ? `${minutes}m ${left % 60}s` : `${left}s`;
    $("wait").textContent = left > 0 ? `You can send again in ${when}.` : "";
    if (left <= 0) clearInterval(state.timer);
    update();
  };
  state.timer = setInterval(tick, 1000);
  tick();
}

export function question() {
  return $("question").value.trim();
}

export function clear() {
  $("question").value = "";
  update();
}

export function wire({ onSubmit, onStop }) {
  $("question").addEventListener("input", update);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("ask").requestSubmit(); }
  });
  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.busy && !$("send").disabled && question()) onSubmit(question());
  });
  $("stop").addEventListener("click", onStop);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.busy) onStop();
  });
  update();
}
