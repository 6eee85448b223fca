"""ragship_charge: a settled call's counters moved in one statement, in lock order.

Settling a call moved each counter row it reserved against (the user's day, the global day
and the global month, or their shards) with one UPDATE each, early in the transaction that
also stores the answer and the ledger row, so the shared global rows stayed locked for
every later round trip to an application whose event loop was busy relaying other answers.
At 1,000 answers ending together the pool drained behind those locks (issue 17). The
function moves them all in one round trip, in the order given (the reservation's lock
order: user, global day, global month), and returns the first row's spent and reserved
(the user's, for the `done` event), so the caller can do it last, just before COMMIT.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION ragship_charge(
    p_scopes text[], p_periods text[], p_amount numeric, p_cost numeric,
    OUT spent numeric, OUT reserved numeric
) LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    row_spent numeric;
    row_reserved numeric;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_scopes, 1), 0) LOOP
        UPDATE spend_counters
        SET reserved_usd = reserved_usd - p_amount, spent_usd = spent_usd + p_cost
        WHERE scope = p_scopes[i] AND period = p_periods[i]
        RETURNING spent_usd, reserved_usd INTO row_spent, row_reserved;
        IF i = 1 THEN
            spent := row_spent;
            reserved := row_reserved;
        END IF;
    END LOOP;
END;
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ragship_charge(text[], text[], numeric, numeric)")
