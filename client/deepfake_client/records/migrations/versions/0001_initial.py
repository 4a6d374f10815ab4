"""The predictions table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("fake_probability", sa.Float(), nullable=True),
        sa.Column("num_faces", sa.Integer(), nullable=False),
        sa.Column("faces", sa.JSON(), nullable=False),
        sa.Column("model_probabilities", sa.JSON(), nullable=False),
        sa.Column("disagreement", sa.Float(), nullable=True),
        sa.Column("untrained", sa.Boolean(), nullable=False),
        sa.Column("processing_time_s", sa.Float(), nullable=True),
        sa.Column("server_url", sa.String(512), nullable=True),
        sa.Column("model_fingerprints", sa.JSON(), nullable=True),
        sa.Column("settings_sha256", sa.String(64), nullable=True),
        sa.Column("provenance", sa.String(32), nullable=True),
        sa.Column("group_id", sa.String(36), nullable=True),
        sa.Column("frame_index", sa.Integer(), nullable=True),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_sha256", "predictions", ["sha256"])
    op.create_index("ix_predictions_verdict", "predictions", ["verdict"])
    op.create_index("ix_predictions_group_id", "predictions", ["group_id"])


def downgrade() -> None:
    op.drop_table("predictions")
