"""ragship_reserve(): a reservation in one statement, so one round trip holds the row locks.

The kill switch, the per-request ceiling and the three conditional counter updates run
inside PostgreSQL in the same order as before (app/caps/budget.py). Called in autocommit,
the row locks on the hot global counters are held for the statement and its commit only,
never across a round trip to a busy client (docs/caps.md, "Reservations under load").

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RESERVE = """
CREATE OR REPLACE FUNCTION ragship_reserve(
    p_id uuid, p_user_id uuid, p_user_scope text, p_global text, p_day text, p_month text,
    p_amount numeric, p_user_cap numeric, p_day_cap numeric, p_month_cap numeric,
    p_check_kill_switch boolean, p_ceiling numeric, p_ttl_s integer
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_check_kill_switch AND coalesce(
        (SELECT enabled FROM app_flags WHERE key = 'kill_switch'), false
    ) THEN
        RETURN 'kill_switch';
    END IF;
    IF p_ceiling IS NOT NULL AND p_amount > p_ceiling THEN
        RETURN 'request_cost';
    END IF;
    INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd)
    VALUES (p_global, p_day, 0, 0), (p_global, p_month, 0, 0)
    ON CONFLICT DO NOTHING;
    -- Lock order as before: user, global day, global month. No deadlocks.
    IF p_user_id IS NOT NULL THEN
        INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd)
        VALUES (p_user_scope, p_day, 0, 0) ON CONFLICT DO NOTHING;
        UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
        WHERE scope = p_user_scope AND period = p_day
          AND spent_usd + reserved_usd + p_amount <= p_user_cap;
        IF NOT FOUND THEN
            RETURN 'user_daily_cap';
        END IF;
    END IF;
    UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
    WHERE scope = p_global AND period = p_day
      AND spent_usd + reserved_usd + p_amount <= p_day_cap;
    IF NOT FOUND THEN
        UPDATE spend_counters SET reserved_usd = reserved_usd - p_amount
        WHERE p_user_id IS NOT NULL AND scope = p_user_scope AND period = p_day;
        RETURN 'global_daily_cap';
    END IF;
    UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
    WHERE scope = p_global AND period = p_month
      AND spent_usd + reserved_usd + p_amount <= p_month_cap;
    IF NOT FOUND THEN
        UPDATE spend_counters SET reserved_usd = reserved_usd - p_amount
        WHERE (scope = p_global AND period = p_day)
           OR (p_user_id IS NOT NULL AND scope = p_user_scope AND period = p_day);
        RETURN 'monthly_budget';
    END IF;
    INSERT INTO reservations (id, user_id, day, month, amount_usd, created_at, expires_at)
    VALUES (p_id, p_user_id, p_day, p_month, p_amount, now(),
            now() + make_interval(secs => p_ttl_s));
    RETURN 'allowed';
END;
$$
"""


def upgrade() -> None:
    op.execute(RESERVE)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS ragship_reserve(uuid, uuid, text, text, text, text, numeric, "
        "numeric, numeric, numeric, boolean, numeric, integer)"
    )
