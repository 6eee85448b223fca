"""The checklist items that need only the configuration and the repository."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from app.observability.upstream_alarm import alert_channels
from app.preflight.checklist import Item, by_hand, failed, passed
from app.preflight.secrets import scan_history
from app.settings import Settings
from app.settings.base import is_placeholder

ABOUT_PLACEHOLDER = "operator@example.com"
CAP_STEPS = """OpenAI: https://platform.openai.com/settings/organization/limits -> set a
monthly budget and turn on "hard limit" for the project that owns LLM_API_KEY.
Other providers: their billing page's spending limit.
Then set PROVIDER_HARD_CAP_USD to that amount: at or above MONTHLY_BUDGET_USD, at most 1.5x."""
MAX_CAP_FACTOR = Decimal("1.5")  # a backstop far above the budget is no backstop


def settings_problems(problems: list[str]) -> Item:
    """The item for settings that did not validate (each problem names its fix)."""
    return failed(
        "prod_settings",
        "Production settings complete, no placeholders",
        f"{len(problems)} problem(s)",
        "\n".join(problems),
    )


def config_items(settings: Settings, *, repo: Path, static_dir: Path) -> list[Item]:
    return [
        _prod(settings),
        secrets_item(repo, _secret_values(settings)),
        _provider_cap(settings),
        _caps(settings),
        _content_logging(settings),
        _about(settings, static_dir),
        _alerts(settings),
    ]


def secrets_item(repo: Path, secrets: dict[str, str]) -> Item:
    title = "No secret in any committed file or in the git history"
    try:
        findings = scan_history(repo, secrets)
    except RuntimeError as err:
        return by_hand("secrets", title, f"run from the repository's clone ({err})")
    if not findings:
        return passed("secrets", title, f"searched for {len(secrets)} configured secret(s)")
    where = "; ".join(f"{f.what} in {f.path}" for f in findings[:10])
    return failed(
        "secrets",
        title,
        where,
        "Rotate each secret found (it is public to anyone with the repository), then remove "
        "it from the history (git filter-repo --replace-text) or start a fresh repository. "
        "A known fake in a test fixture goes in .preflight-allow.",
    )


def _secret_values(settings: Settings) -> dict[str, str]:
    values = {
        "SESSION_SECRET": settings.session_secret,
        "OIDC_CLIENT_SECRET": settings.oidc_client_secret,
        "METRICS_TOKEN": settings.metrics_token,
        "SMTP_PASSWORD": settings.smtp_password,
        "UPSTASH_REDIS_REST_TOKEN": settings.upstash_redis_rest_token,
        "PREFLIGHT_TOKEN": settings.preflight_token,
    }
    found = {k: v.get_secret_value() for k, v in values.items() if v is not None}
    if settings.llm_base_url:
        found["LLM_API_KEY"] = settings.llm_api_key.get_secret_value()
    # A placeholder is public by design (the prod settings check refuses it).
    return {k: v for k, v in found.items() if v and not is_placeholder(v)}


def _prod(settings: Settings) -> Item:
    title = "Production settings complete, no placeholders"
    if settings.env != "prod":
        return failed("prod_settings", title, f"ENV={settings.env}", "Set ENV=prod.")
    return passed("prod_settings", title, "validated for ENV=prod")


def _provider_cap(settings: Settings) -> Item:
    title = "Provider-side hard spending cap confirmed"
    cap, budget = settings.provider_hard_cap_usd, settings.monthly_budget_usd
    if cap is None:
        return failed("provider_cap", title, "PROVIDER_HARD_CAP_USD is not set", CAP_STEPS)
    if cap < budget:
        return failed(
            "provider_cap",
            title,
            f"${cap} is below MONTHLY_BUDGET_USD=${budget}: the provider would stop answers "
            "before the budget is used",
            "Raise the provider's limit, or lower MONTHLY_BUDGET_USD to it.\n" + CAP_STEPS,
        )
    if cap > budget * MAX_CAP_FACTOR:
        return failed(
            "provider_cap",
            title,
            f"${cap} is over {MAX_CAP_FACTOR}x MONTHLY_BUDGET_USD=${budget}: a weak backstop",
            "Lower the provider's limit towards MONTHLY_BUDGET_USD.\n" + CAP_STEPS,
        )
    return passed("provider_cap", title, f"${cap} at the provider, budget ${budget}")


def _caps(settings: Settings) -> Item:
    title = "Rate limit, per-user cap and global cap configured"
    s = settings
    detail = (
        f"{s.rate_limit_requests} requests / {s.rate_limit_window_s}s, "
        f"${s.user_daily_cap_usd}/user/day, ${s.global_daily_cap_usd}/day, "
        f"${s.monthly_budget_usd}/month"
    )
    problems = []
    if s.user_daily_cap_usd <= 0 or s.global_daily_cap_usd <= 0:
        problems.append("USER_DAILY_CAP_USD and GLOBAL_DAILY_CAP_USD must be above 0")
    if s.user_daily_cap_usd > s.global_daily_cap_usd:
        problems.append("USER_DAILY_CAP_USD is above GLOBAL_DAILY_CAP_USD")
    if s.global_daily_cap_usd > s.monthly_budget_usd:
        problems.append("GLOBAL_DAILY_CAP_USD is above MONTHLY_BUDGET_USD")
    if problems:
        return failed("caps", title, detail, "; ".join(problems) + " (docs/caps.md).")
    return passed("caps", title, detail)


def _content_logging(settings: Settings) -> Item:
    title = "Content-logging policy chosen explicitly"
    if "content_logging" not in settings.model_fields_set:
        return failed(
            "content_logging",
            title,
            f"CONTENT_LOGGING is not set (default {settings.content_logging})",
            "Set CONTENT_LOGGING=full, redacted or none, and say so on the about page "
            "(docs/observability.md#content-and-retention).",
        )
    return passed("content_logging", title, f"CONTENT_LOGGING={settings.content_logging}")


def _about(settings: Settings, static_dir: Path) -> Item:
    title = "About, privacy and contact page filled in"
    page = (static_dir / "about.html").read_text(encoding="utf-8")
    if settings.contact_text or ABOUT_PLACEHOLDER not in page:
        return passed("about_page", title)
    return failed(
        "about_page",
        title,
        f"the contact is still {ABOUT_PLACEHOLDER}",
        "Set CONTACT_TEXT (and PRIVACY_TEXT), or edit static/about.html (docs/make-it-yours.md).",
    )


def _alerts(settings: Settings) -> Item:
    title = "An alert channel is configured"
    channels = alert_channels(settings)
    if channels:
        return passed("alerts", title, ", ".join(channels))
    return failed(
        "alerts",
        title,
        "no webhook, no email",
        "Set ALERT_WEBHOOK_URL (Slack-compatible), or SMTP_HOST and ALERT_EMAIL_TO.",
    )
