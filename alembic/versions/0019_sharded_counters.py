"""Sharded global counters: a reservation takes one of N shard rows, not the one hot row.

The global day and month counters may be split into `GLOBAL_COUNTER_SHARDS` rows
('global', 'global#1', ... 'global#N-1'), each holding a share of the cap. The shares
always add up to the cap and no shard's spent + reserved passes its share, so the caps stay
exact; when no share has room, one reservation locks every shard of the counter (in shard
order), checks the whole counter against the cap and divides what is left among the shards
again (docs/caps.md, "Sharded global counters"). With one shard (the default) a reservation
is the single conditional UPDATE of migration 0014.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

SCOPES = """
CREATE OR REPLACE FUNCTION ragship_shard_scope(p_scope text, p_shard integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_shard = 0 THEN p_scope ELSE p_scope || '#' || p_shard END
$$;

-- The rows of one counter: its shard count is the base row's, fixed when the period began.
CREATE OR REPLACE FUNCTION ragship_shard_scopes(p_scope text, p_period text) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(ragship_shard_scope(p_scope, k) ORDER BY k)
    FROM generate_series(0, coalesce(
        (SELECT shards FROM spend_counters WHERE scope = p_scope AND period = p_period), 1
    ) - 1) AS k
$$;

-- One counter's totals over its shards; no row when the counter has none.
CREATE OR REPLACE FUNCTION ragship_counter(p_scope text, p_period text)
RETURNS TABLE (spent_usd numeric, reserved_usd numeric)
LANGUAGE sql STABLE AS $$
    SELECT sum(spent_usd), sum(reserved_usd) FROM spend_counters
    WHERE period = p_period AND scope = ANY (ragship_shard_scopes(p_scope, p_period))
    HAVING count(*) > 0
$$;
"""

TAKE = """
-- Reserve p_amount on one shard of a global counter; the shard's number, or NULL when the
-- whole counter has no room for it under p_cap. Run inside ragship_reserve (one transaction).
CREATE OR REPLACE FUNCTION ragship_take(
    p_scope text, p_period text, p_amount numeric, p_cap numeric, p_shards integer
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
    v_scopes text[];
    v_shard integer;
    v_total numeric;
    v_free numeric;
    v_each numeric;
BEGIN
    INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd, shards)
    VALUES (p_scope, p_period, 0, 0, p_shards) ON CONFLICT DO NOTHING;
    SELECT shards INTO v_n FROM spend_counters WHERE scope = p_scope AND period = p_period;
    IF v_n = 1 THEN  -- one row: the conditional UPDATE of migration 0014
        UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
        WHERE scope = p_scope AND period = p_period
          AND spent_usd + reserved_usd + p_amount <= p_cap;
        RETURN CASE WHEN FOUND THEN 0 END;
    END IF;
    v_scopes := ARRAY(SELECT ragship_shard_scope(p_scope, k) FROM generate_series(0, v_n - 1) k);
    IF NOT EXISTS (SELECT FROM spend_counters
                   WHERE scope = v_scopes[v_n] AND period = p_period) THEN
        INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd, shards, shard)
        SELECT v_scopes[k + 1], p_period, 0, 0, v_n, k FROM generate_series(1, v_n - 1) k
        ON CONFLICT DO NOTHING;
    END IF;
    -- 1. A shard nobody holds whose share has room: lock it (others skipped), take.
    --    Steps 1 and 2 each run in a block of their own (a subtransaction): FOR UPDATE and
    --    UPDATE lock a row's latest version before they check the condition again, and a row
    --    that then fails it stays locked. Leaving the block by its exception rolls it back and
    --    frees such rows, so a reservation that goes on to wait for this counter's shards holds
    --    none of them (two reservations each holding a stray shard while step 3 waits for the
    --    other's deadlocked; docs/caps.md, "No deadlocks").
    BEGIN
        SELECT shard INTO v_shard FROM spend_counters
        WHERE scope = ANY (v_scopes) AND period = p_period AND cap_usd = p_cap
          AND spent_usd + reserved_usd + p_amount <= share_usd
        ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RAISE SQLSTATE 'RG001';
        END IF;
        UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
        WHERE scope = v_scopes[v_shard + 1] AND period = p_period;
        RETURN v_shard;
    EXCEPTION WHEN SQLSTATE 'RG001' THEN
        NULL;  -- no free shard with room; the rows this step locked are free again
    END;
    -- 2. Every shard with room is held by another reservation: wait for one, check again.
    BEGIN
        SELECT shard INTO v_shard FROM spend_counters
        WHERE scope = ANY (v_scopes) AND period = p_period AND cap_usd = p_cap
          AND spent_usd + reserved_usd + p_amount <= share_usd
        ORDER BY random() LIMIT 1;
        IF FOUND THEN
            UPDATE spend_counters SET reserved_usd = reserved_usd + p_amount
            WHERE scope = v_scopes[v_shard + 1] AND period = p_period AND cap_usd = p_cap
              AND spent_usd + reserved_usd + p_amount <= share_usd;
            IF FOUND THEN
                RETURN v_shard;
            END IF;
        END IF;
        RAISE SQLSTATE 'RG001';
    EXCEPTION WHEN SQLSTATE 'RG001' THEN
        NULL;  -- its share ran out while we waited; the row we waited for is free again
    END;
    -- 3. No share has room (or the cap changed): lock every shard in shard order, check the
    --    whole counter against the cap, take, and divide the rest among the shards again.
    PERFORM FROM spend_counters WHERE scope = ANY (v_scopes) AND period = p_period
    ORDER BY shard FOR UPDATE;
    SELECT sum(spent_usd + reserved_usd) INTO v_total FROM spend_counters
    WHERE scope = ANY (v_scopes) AND period = p_period;
    IF v_total + p_amount > p_cap THEN
        RETURN NULL;
    END IF;
    v_shard := floor(random() * v_n)::integer;
    v_free := p_cap - v_total - p_amount;
    v_each := trunc(v_free / v_n, 6);
    UPDATE spend_counters
    SET reserved_usd = reserved_usd + CASE WHEN shard = v_shard THEN p_amount ELSE 0 END,
        cap_usd = p_cap,
        share_usd = spent_usd + reserved_usd + v_each + CASE
            WHEN shard = v_shard THEN p_amount + v_free - v_each * v_n ELSE 0 END
    WHERE scope = ANY (v_scopes) AND period = p_period;
    RETURN v_shard;
END;
$$;
"""

RESERVE = """
CREATE OR REPLACE FUNCTION ragship_reserve(
    p_id uuid, p_user_id uuid, p_user_scope text, p_global text, p_day text, p_month text,
    p_amount numeric, p_user_cap numeric, p_day_cap numeric, p_month_cap numeric,
    p_check_kill_switch boolean, p_ceiling numeric, p_ttl_s integer, p_shards integer
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_day integer;
    v_month integer;
BEGIN
    IF p_check_kill_switch AND coalesce(
        (SELECT enabled FROM app_flags WHERE key = 'kill_switch'), false
    ) THEN
        RETURN 'kill_switch';
    END IF;
    IF p_ceiling IS NOT NULL AND p_amount > p_ceiling THEN
        RETURN 'request_cost';
    END IF;
    -- Lock order: user, global day (its shards in shard order), global month. No deadlocks.
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
    v_day := ragship_take(p_global, p_day, p_amount, p_day_cap, p_shards);
    IF v_day IS NULL THEN
        UPDATE spend_counters SET reserved_usd = reserved_usd - p_amount
        WHERE p_user_id IS NOT NULL AND scope = p_user_scope AND period = p_day;
        RETURN 'global_daily_cap';
    END IF;
    v_month := ragship_take(p_global, p_month, p_amount, p_month_cap, p_shards);
    IF v_month IS NULL THEN
        UPDATE spend_counters SET reserved_usd = reserved_usd - p_amount
        WHERE (scope = ragship_shard_scope(p_global, v_day) AND period = p_day)
           OR (p_user_id IS NOT NULL AND scope = p_user_scope AND period = p_day);
        RETURN 'monthly_budget';
    END IF;
    INSERT INTO reservations (id, user_id, day, month, amount_usd, created_at, expires_at,
                              day_shard, month_shard)
    VALUES (p_id, p_user_id, p_day, p_month, p_amount, now(),
            now() + make_interval(secs => p_ttl_s), v_day, v_month);
    RETURN 'allowed';
END;
$$;
"""

OLD_ARGS = (
    "uuid, uuid, text, text, text, text, numeric, numeric, numeric, numeric, boolean, numeric, "
    "integer"
)
COLUMNS = (
    ("spend_counters", "shards", sa.SmallInteger(), "1"),  # the counter's shards (base row)
    ("spend_counters", "shard", sa.SmallInteger(), "0"),  # this row's shard number
    ("spend_counters", "share_usd", sa.Numeric(14, 6), None),  # this shard's share of the cap
    ("spend_counters", "cap_usd", sa.Numeric(14, 6), None),  # the cap the shares divide
    ("reservations", "day_shard", sa.SmallInteger(), "0"),
    ("reservations", "month_shard", sa.SmallInteger(), "0"),
)


def upgrade() -> None:
    for table, name, kind, default in COLUMNS:
        op.add_column(
            table, sa.Column(name, kind, server_default=default, nullable=default is None)
        )
    op.execute(f"DROP FUNCTION IF EXISTS ragship_reserve({OLD_ARGS})")
    op.execute(SCOPES)
    op.execute(TAKE)
    op.execute(RESERVE)


def downgrade() -> None:
    """Back to one row per global counter: each counter's shards are folded into its base row."""
    op.execute(f"DROP FUNCTION IF EXISTS ragship_reserve({OLD_ARGS}, integer)")
    op.execute("DROP FUNCTION IF EXISTS ragship_take(text, text, numeric, numeric, integer)")
    op.execute(
        "UPDATE spend_counters b SET spent_usd = t.spent, reserved_usd = t.reserved "
        "FROM (SELECT s0.scope, s0.period, c.spent_usd AS spent, c.reserved_usd AS reserved "
        "      FROM spend_counters s0, ragship_counter(s0.scope, s0.period) c "
        "      WHERE s0.shards > 1 AND s0.shard = 0) t "
        "WHERE b.scope = t.scope AND b.period = t.period"
    )
    op.execute("DELETE FROM spend_counters WHERE shard > 0")
    op.execute("DROP FUNCTION IF EXISTS ragship_counter(text, text)")
    op.execute("DROP FUNCTION IF EXISTS ragship_shard_scopes(text, text)")
    op.execute("DROP FUNCTION IF EXISTS ragship_shard_scope(text, integer)")
    for table, name, _, _ in reversed(COLUMNS):
        op.drop_column(table, name)
    op.execute(_reserve_0014())


def _reserve_0014() -> str:
    """Migration 0014's ragship_reserve, read from its file (its module name is no identifier)."""
    path = Path(__file__).with_name("0014_reserve_function.py")
    spec = importlib.util.spec_from_file_location("reserve_0014", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.RESERVE)
