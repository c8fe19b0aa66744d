"""Devices report their consent per policy version; dataset builds run on the collector and
remember which sessions they hold (so a deletion can withdraw them).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DEVICE = sa.String(40)


def _ns(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("version", sa.String(80), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        _ns("at_ns", False),
    )
    op.create_table(
        "builds",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("engine", sa.String(12), nullable=False),
        sa.Column("note", sa.String(200)),
        _ns("created_ns", False),
        _ns("started_ns"),
        _ns("finished_ns"),
        _ns("heartbeat_ns"),
        _count("done_sessions"),
        _count("total_sessions"),
        _count("episodes"),
        _count("steps"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("coverage", sa.Text),
    )
    op.create_table(
        "build_sessions",
        sa.Column("build", sa.String(24), primary_key=True),
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("session", sa.BigInteger, primary_key=True),
    )
    op.create_index("ix_build_sessions_device", "build_sessions", ["device"])


def downgrade() -> None:
    op.drop_index("ix_build_sessions_device", "build_sessions")
    op.drop_table("build_sessions")
    op.drop_table("builds")
    op.drop_table("consents")
