"""the network plans the nights: node profiles, wanted targets, allocations, assignments,
acknowledgements, alerts (issue 21)

Revision ID: 0003
Revises: 0002 (re-chained after 0003 when the branches merge)
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the planning tables."""
    op.create_table(
        "node_profiles",
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("latitude", sa.Float()),
        sa.Column("longitude", sa.Float()),
        sa.Column("height", sa.Float()),
        sa.Column("sun_limit", sa.Float()),
        sa.Column("min_altitude", sa.Float()),
        sa.Column("max_altitude", sa.Float()),
        sa.Column("horizon", sa.JSON()),
        sa.Column("model", sa.String(64)),
        sa.Column("bright_limit", sa.Float()),
        sa.Column("faint_limit", sa.Float()),
        sa.Column("weather_veto", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("weather_reason", sa.Text()),
        sa.Column("updated", sa.Float(), nullable=False),
    )
    op.create_table(
        "wanted",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("member", sa.String(16), server_default="", nullable=False),
        sa.Column("ra", sa.Float()),
        sa.Column("dec", sa.Float()),
        sa.Column("brightest", sa.Float()),
        sa.Column("faintest", sa.Float()),
        sa.Column("cadence_days", sa.Float()),
        sa.Column("priority", sa.Float(), server_default="0", nullable=False),
        sa.Column("until", sa.String(10)),
        sa.Column("source", sa.String(64)),
        sa.Column("created", sa.Float(), nullable=False),
        sa.UniqueConstraint("target", "kind", "member", name="wanted_target_kind_member"),
    )
    op.create_table(
        "allocations",
        sa.Column("night", sa.String(10), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("night", sa.String(10), primary_key=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("ack_hash", sa.String(64)),
        sa.Column("ack_status", sa.String(12)),
        sa.Column("ack_reason", sa.Text()),
        sa.Column("ack_at", sa.Float()),
    )
    op.create_table(
        "assignment_items",
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("night", sa.String(10), primary_key=True),
        sa.Column("target", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("assignment_items_night_target", "assignment_items", ["night", "target"])
    op.create_table(
        "acks",
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("subject", sa.String(120), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("received", sa.Float(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("ra", sa.Float(), nullable=False),
        sa.Column("dec", sa.Float(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("node_id", sa.Integer(), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("night", sa.String(10), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("at", sa.Float()),
        sa.Column("reason", sa.Text()),
    )


def downgrade() -> None:
    """Drop the planning tables."""
    for table in ("alert_deliveries", "alerts", "acks"):
        op.drop_table(table)
    op.drop_index("assignment_items_night_target", table_name="assignment_items")
    for table in ("assignment_items", "assignments", "allocations", "wanted", "node_profiles"):
        op.drop_table(table)
