"""Operator state: flags, status probes, incidents, alerts and guardrail triggers."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Numeric,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class AppFlag(Base):
    """Switches every replica must agree on (the kill switch), kept in the database."""

    __tablename__ = "app_flags"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StatusProbe(Base):
    __tablename__ = "status_probes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    component: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # operational, degraded, down, unknown
    latency_ms: Mapped[float | None] = mapped_column(Numeric(10, 1), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_status_probes_component_time", "component", "checked_at"),)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    component: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")

    # At most one open incident per component.
    __table_args__ = (
        Index(
            "ix_incidents_open",
            "component",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
        ),
    )


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule: Mapped[str] = mapped_column(String(48))
    message: Mapped[str] = mapped_column(Text)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_alerts_rule_fired", "rule", "fired_at"),)


class GuardrailTrigger(Base):
    """One row per guardrail trigger (docs/guardrails.md)."""

    __tablename__ = "guardrail_triggers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    layer: Mapped[str] = mapped_column(String(16))  # input, retrieval, output
    rule: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))  # flag or block
    excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
