"""The first collector schema: admins, enrolment codes, devices, sessions, segments and the
frames they use, tiles and who uploaded them, tombstones, deletion requests, policies.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_DEVICE = sa.String(40)


def _ns(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "admins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "enroll_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        _ns("created_ns"),
        _ns("expires_ns"),
        _ns("used_ns", True),
        sa.Column("device", _DEVICE),
        sa.Column("note", sa.String(200)),
    )
    op.create_table(
        "devices",
        sa.Column("id", _DEVICE, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200)),
        _ns("created_ns"),
        _ns("revoked_ns", True),
        _ns("last_seen_ns", True),
    )
    op.create_table(
        "sessions",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("session", sa.BigInteger, primary_key=True),
        sa.Column("date", sa.String(10), nullable=False),
        _ns("started_wall_ns"),
        _ns("started_mono_ns"),
        sa.Column("meta", sa.Text, nullable=False),
        _ns("updated_ns"),
    )
    op.create_table(
        "segments",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("session", sa.BigInteger, primary_key=True),
        sa.Column("first_seq", sa.BigInteger, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "segment_frames",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("session", sa.BigInteger, primary_key=True),
        sa.Column("first_seq", sa.BigInteger, primary_key=True),
        sa.Column("frame", sa.String(32), primary_key=True),
    )
    op.create_index("ix_segment_frames_frame", "segment_frames", ["device", "frame"])
    op.create_table(
        "frames",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("frame", sa.String(32), primary_key=True),
        sa.Column("bytes", sa.Integer, nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "tiles",
        sa.Column("hash", sa.String(32), primary_key=True),
        sa.Column("bytes", sa.Integer, nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "tile_owners",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("hash", sa.String(32), primary_key=True),
    )
    op.create_table(
        "tombstones",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device", _DEVICE, nullable=False, index=True),
        sa.Column("session", sa.BigInteger),
        sa.Column("seq_from", sa.BigInteger),
        sa.Column("seq_to", sa.BigInteger),
        _ns("since_wall_ns", True),
        _ns("until_wall_ns", True),
        sa.Column("reason", sa.String(20), nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "deletions",
        sa.Column("device", _DEVICE, primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        _ns("created_ns"),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.String(80), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        _ns("created_ns"),
    )


def downgrade() -> None:
    for table in (
        "policies",
        "deletions",
        "tombstones",
        "tile_owners",
        "tiles",
        "frames",
        "segment_frames",
        "segments",
        "sessions",
        "devices",
        "enroll_codes",
        "admins",
    ):
        op.drop_table(table)
