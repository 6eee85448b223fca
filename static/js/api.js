// The API client: same-origin fetch that adds the session's CSRF token to every
// state-changing call and sends the browser to sign-in when the session is gone.

export const session = { me: null };

export function toSignIn() {
  window.location.href = "/auth/login?next=" + encodeURIComponent(window.location.pathname);
}

export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (options.method && options.method !== "GET") headers["X-CSRF-Token"] = session.me ? session.me.csrf_token : "";
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) toSignIn();
  return response;
}

export function sendJson(path, method, body, options = {}) {
  return api(path, {
    ...options,
    method,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
    body: JSON.stringify(body),
  });
}

// A refusal as the user should read it: { message, retryAfterS }.
export async function refusal(response) {
  let message = `The request failed (${response.status}). Please try again.`;
  let retryAfterS = null;
  try {
    const body = await response.json();
    if (typeof body.detail === "string") message = body.detail;
    else if (Array.isArray(body.detail)) message = body.detail.map((d) => d.msg).join("; ");
    if (typeof body.retry_after_s === "number") retryAfterS = body.retry_after_s;
  } catch (_) { /* not JSON: keep the generic text */ }
  return { message, retryAfterS };
}
