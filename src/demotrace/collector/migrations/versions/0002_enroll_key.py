"""Enrolment codes remember the hash of the key the device chose, so an enrolment whose answer
was lost can be retried with the same code.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enroll_codes") as batch:
        batch.add_column(sa.Column("key_hash", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("enroll_codes") as batch:
        batch.drop_column("key_hash")
