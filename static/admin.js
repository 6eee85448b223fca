// Admin page: invites and users. Values are inserted as text, never as HTML.
"use strict";

let csrf = "";

async function call(path, method = "GET", body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
  return response.json();
}

function row(cells, action) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement("td");
  if (action) {
    const button = document.createElement("button");
    button.textContent = action.label;
    button.addEventListener("click", async () => { await action.run(); refresh(); });
    td.append(button);
  }
  tr.append(td);
  return tr;
}

async function refresh() {
  const invites = await call("/api/admin/invites");
  document.querySelector("#invites tbody").replaceChildren(...invites.map((i) => row(
    [location.origin + i.url, i.note, `${i.uses}/${i.max_uses}`, i.revoked ? "revoked" : i.expires_at],
    i.revoked ? null : { label: "Revoke", run: () => call(`/api/admin/invites/${i.id}`, "DELETE") },
  )));
  const users = await call("/api/admin/users");
  document.querySelector("#users tbody").replaceChildren(...users.map((u) => row(
    [u.email, u.name, u.last_login_at || "never"],
    u.revoked
      ? { label: "Restore", run: () => call(`/api/admin/users/${u.id}/restore`, "POST") }
      : { label: "Revoke", run: () => call(`/api/admin/users/${u.id}/revoke`, "POST") },
  )));
}

document.getElementById("new-invite").addEventListener("submit", async (event) => {
  event.preventDefault();
  await call("/api/admin/invites", "POST", {
    max_uses: Number(document.getElementById("invite-uses").value),
    expires_in_days: Number(document.getElementById("invite-days").value),
    note: document.getElementById("invite-note").value,
  });
  refresh();
});

(async () => {
  csrf = (await call("/api/me")).csrf_token;
  refresh();
})();
