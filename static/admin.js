// Admin page: charts (static/js/charts.js), tables, thumbs-down feedback, invites and users.
// Values are inserted as text, never as HTML.

import { lineChart, pivot } from "./js/charts.js";

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

function cells(tbody, rows, onClick) {
  document.querySelector(`${tbody} tbody`).replaceChildren(...rows.map((values, n) => {
    const tr = document.createElement("tr");
    for (const v of values) {
      const td = document.createElement("td");
      td.textContent = v === null || v === undefined ? "–" : String(v);
      tr.append(td);
    }
    if (onClick) { tr.classList.add("clickable"); tr.addEventListener("click", () => onClick(n)); }
    return tr;
  }));
}

const ms = (v) => (v === null ? null : Math.round(v));

async function refreshDashboard() {
  const days = document.getElementById("range").value;
  const q = `?days=${days}`;
  const caps = await call("/api/admin/dashboard/caps");
  document.getElementById("caps").textContent =
    `Today: $${caps.global_spent_today_usd} of $${caps.global_daily_cap_usd} ` +
    `(${Math.round((caps.global_used_fraction || 0) * 100)}%), $${caps.global_reserved_now_usd} reserved now. ` +
    `This month: $${caps.spent_this_month_usd} of $${caps.monthly_budget_usd}. ` +
    `Kill switch: ${caps.kill_switch ? "ON (paused)" : "off"}.`;
  document.getElementById("kill").textContent = caps.kill_switch ? "Resume" : "Pause everything";
  document.getElementById("kill").onclick = async () => {
    await call("/api/admin/kill-switch", "POST", { paused: !caps.kill_switch });
    refreshDashboard();
  };
  const spend = await call(`/api/admin/dashboard/spend${q}`);
  cells("#spend", spend.map((r) => [r.day, r.model, r.feature, r.calls, `$${r.cost_usd}`]));
  const perDay = pivot(spend, "day", (r) => `${r.model} · ${r.feature}`, "cost_usd");
  const dollars = (v) => `$${v.toFixed(4)}`;
  lineChart(document.getElementById("spend-chart"), perDay.times,
    perDay.series.map((s) => ({ ...s, format: dollars })), { yLabel: "USD", days: Number(days) + 1, yFormat: dollars });
  const top = await call(`/api/admin/dashboard/top-users${q}`);
  cells("#top-spend", top.by_spend.map((u) => [u.email, `$${u.cost_usd}`, u.calls]));
  cells("#top-requests", top.by_requests.map((u) => [u.email, u.calls, `$${u.cost_usd}`]));
  const latency = await call(`/api/admin/dashboard/latency${q}`);
  cells("#latency", latency.map((r) => [r.t, r.calls, ms(r.p50_ms), ms(r.p95_ms), ms(r.ttft_p50_ms), ms(r.ttft_p95_ms)]));
  const msText = (v) => `${Math.round(v)} ms`;
  lineChart(document.getElementById("latency-chart"), latency.map((r) => r.t), [
    { label: "p50", values: latency.map((r) => r.p50_ms), format: msText },
    { label: "p95", values: latency.map((r) => r.p95_ms), format: msText },
    { label: "TTFT p50", values: latency.map((r) => r.ttft_p50_ms), format: msText },
    { label: "TTFT p95", values: latency.map((r) => r.ttft_p95_ms), format: msText },
  ], { yLabel: "ms", days: Number(days) });
  const outcomes = await call(`/api/admin/dashboard/outcomes${q}`);
  cells("#outcomes", outcomes.map((r) => [r.t, r.calls, `${(r.error_rate * 100).toFixed(1)}%`,
    `${(r.refusal_rate * 100).toFixed(1)}%`, Object.entries(r.by_outcome).map(([k, v]) => `${k}: ${v}`).join(", ")]));
  const levers = await call(`/api/admin/dashboard/levers${q}`);
  cells("#levers", [[levers.answered, levers.cache_hits,
    levers.cache_hit_rate === null ? "–" : `${(levers.cache_hit_rate * 100).toFixed(1)}%`,
    `$${levers.cache_saved_usd}`, levers.no_context_answers]]);
  const quality = await call(`/api/admin/dashboard/quality${q}&bucket=${Number(days) <= 2 ? "hour" : "day"}`);
  document.getElementById("quality-note").textContent =
    `${(quality.sample_rate * 100).toFixed(1)}% of live answers are scored by ${quality.judge_model} ` +
    "in the background, per model and prompt version (docs/evals.md).";
  const score = (v) => (v === null ? "–" : v.toFixed(2));
  cells("#quality", quality.trend.map((r) => [r.at, r.model, r.prompt_version, r.scored, score(r.groundedness),
    score(r.relevance), score(r.citation_validity), r.dont_know_rate === null ? "–" : `${(r.dont_know_rate * 100).toFixed(1)}%`,
    `$${r.judge_cost_usd}`]));
  const grounded = pivot(quality.trend.filter((r) => r.groundedness !== null), "at",
    (r) => `${r.model} · ${r.prompt_version}`, "groundedness");
  lineChart(document.getElementById("quality-chart"), grounded.times,
    grounded.series.map((s) => ({ ...s, format: (v) => v.toFixed(2) })), { yLabel: "groundedness", days: Number(days) });
  const percent = (v) => `${(v * 100).toFixed(1)}%`;
  const rate = (v) => (v === null ? null : percent(v));
  const models = await call(`/api/admin/dashboard/models${q}`);
  cells("#models", models.map((m) => [m.arm, m.model, m.prompt_version, m.answers, `$${m.cost_per_answer_usd}`,
    ms(m.ttft_p50_ms), ms(m.latency_p50_ms), rate(m.error_rate), rate(m.dont_know_rate), rate(m.thumbs_down_rate)]));
  lineChart(document.getElementById("outcomes-chart"), outcomes.map((r) => r.t), [
    { label: "Requests", values: outcomes.map((r) => r.calls), format: (v) => String(v) },
    { label: "Error rate", values: outcomes.map((r) => r.error_rate), scale: "rate", format: percent },
    { label: "Refusal rate", values: outcomes.map((r) => r.refusal_rate), scale: "rate", format: percent },
  ], { yLabel: "requests", rateLabel: "rate", days: Number(days) });
  const drafts = await call("/api/admin/feedback/draft-cases");
  cells("#thumbs-down", drafts.map((d) => [d.question, d.notes.answer_given.slice(0, 300), d.notes.user_comment || "–", d.notes.trace_id]));
  const guardrails = await call(`/api/admin/dashboard/guardrails${q}`);
  cells("#guardrails", guardrails.map((g) => [g.rule, g.layer, g.blocks, g.flags, g.per_1000_requests ?? "–"]));
  const alerts = await call("/api/admin/dashboard/alerts");
  cells("#alerts", alerts.map((a) => [a.fired_at, a.rule, a.message, a.delivered || "nowhere"]));
  const calls = await call("/api/admin/dashboard/calls");
  cells("#calls", calls.map((c) => [c.created_at, c.email, c.model, c.admission, c.status,
    `${c.input_tokens}+${c.output_tokens}`, `$${c.cost_usd}`, ms(c.latency_ms === null ? null : Number(c.latency_ms)), c.trace_id]),
  async (n) => {
    const detail = document.getElementById("call-detail");
    detail.textContent = JSON.stringify(await call(`/api/admin/dashboard/calls/${calls[n].id}`), null, 2);
    detail.hidden = false;
  });
}

document.getElementById("range").addEventListener("change", refreshDashboard);

async function refresh() {
  const invites = await call("/api/admin/invites");
  document.querySelector("#invites tbody").replaceChildren(...invites.map((i) => row(
    [location.origin + i.url, i.note, `${i.uses}/${i.max_uses}`, i.revoked ? "revoked" : i.expires_at],
    i.revoked ? null : { label: "Revoke", run: () => call(`/api/admin/invites/${i.id}`, "DELETE") },
  )));
  const users = await call("/api/admin/users");
  document.querySelector("#users tbody").replaceChildren(...users.map((u) => row(
    [u.email, u.name, u.last_login_at || "never", `$${u.spend_30d_usd}`, u.requests_30d],
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
  refreshDashboard();
})();
