"""Deliver an alert: to a Slack-compatible webhook and/or by email (SMTP)."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

import httpx

from app.settings import Settings

log = logging.getLogger("ragship.alerts")


async def deliver(
    settings: Settings, http: httpx.AsyncClient, *, subject: str, text: str
) -> list[str]:
    """Send everywhere configured; returns where it was delivered ("webhook", "email")."""
    delivered = []
    if settings.alert_webhook_url:
        try:
            response = await http.post(
                settings.alert_webhook_url, json={"text": f"*{subject}*\n{text}"}, timeout=10
            )
            response.raise_for_status()
            delivered.append("webhook")
        except httpx.HTTPError as err:
            log.error("alert webhook failed: %r", err)
    if settings.smtp_host and settings.alert_email_to:
        try:
            await asyncio.to_thread(_send_email, settings, subject, text)
            delivered.append("email")
        except (OSError, smtplib.SMTPException) as err:
            log.error("alert email failed: %r", err)
    return delivered


def _send_email(settings: Settings, subject: str, text: str) -> None:
    message = EmailMessage()
    message["Subject"] = f"[ragship] {subject}"
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.alert_email_to)
    message.set_content(text)
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
