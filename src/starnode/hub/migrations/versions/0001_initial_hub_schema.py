"""initial hub schema

Revision ID: 0001
Revises: (none)
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consensus',
    sa.Column('night', sa.String(length=10), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('band', sa.String(length=8), nullable=False),
    sa.Column('win', sa.BigInteger(), nullable=False),
    sa.Column('jd', sa.Float(), nullable=False),
    sa.Column('magnitude', sa.Float(), nullable=False),
    sa.Column('error', sa.Float(), nullable=False),
    sa.Column('n_nodes', sa.Integer(), nullable=False),
    sa.Column('n_points', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('night', 'target', 'band', 'win')
    )
    op.create_table('nodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('observer_code', sa.String(length=16), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('last_contact', sa.Float(), nullable=True),
    sa.Column('last_heartbeat', sa.Float(), nullable=True),
    sa.Column('heartbeat', sa.JSON(), nullable=True),
    sa.Column('pushes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('held', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodes_observer_code'), ['observer_code'], unique=False)

    op.create_table('measurements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idem_key', sa.String(length=160), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('band', sa.String(length=8), nullable=False),
    sa.Column('night', sa.String(length=10), nullable=False),
    sa.Column('jd', sa.Float(), nullable=False),
    sa.Column('magnitude', sa.Float(), nullable=False),
    sa.Column('uncertainty', sa.Float(), nullable=False),
    sa.Column('quality', sa.String(length=12), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received', sa.Float(), nullable=False),
    sa.Column('flag', sa.String(length=16), nullable=True),
    sa.Column('flag_reason', sa.Text(), nullable=True),
    sa.Column('consensus', sa.Float(), nullable=True),
    sa.Column('residual', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idem_key')
    )
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.create_index(
            'measurements_night_target', ['night', 'target', 'band', 'jd'], unique=False)
        batch_op.create_index('measurements_node_night', ['node_id', 'night'], unique=False)

    op.create_table('offsets',
    sa.Column('node_id', sa.Integer(), nullable=False),
    sa.Column('night', sa.String(length=10), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('band', sa.String(length=8), nullable=False),
    sa.Column('mag_offset', sa.Float(), nullable=False),
    sa.Column('error', sa.Float(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('significant', sa.Boolean(), nullable=False),
    sa.Column('computed', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ),
    sa.PrimaryKeyConstraint('node_id', 'night', 'target', 'band')
    )
    op.create_table('tokens',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('node_id', sa.Integer(), nullable=True),
    sa.Column('label', sa.String(length=64), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], ),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('report_rows',
    sa.Column('obscode', sa.String(length=16), nullable=False),
    sa.Column('mkey', sa.String(length=200), nullable=False),
    sa.Column('measurement_id', sa.BigInteger(), nullable=False),
    sa.Column('night', sa.String(length=10), nullable=False),
    sa.Column('jd', sa.Float(), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['measurement_id'], ['measurements.id'], ),
    sa.PrimaryKeyConstraint('obscode', 'mkey')
    )
    with op.batch_alter_table('report_rows', schema=None) as batch_op:
        batch_op.create_index('report_rows_night', ['obscode', 'night'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('report_rows', schema=None) as batch_op:
        batch_op.drop_index('report_rows_night')

    op.drop_table('report_rows')
    op.drop_table('tokens')
    op.drop_table('offsets')
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.drop_index('measurements_node_night')
        batch_op.drop_index('measurements_night_target')

    op.drop_table('measurements')
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodes_observer_code'))

    op.drop_table('nodes')
    op.drop_table('consensus')
