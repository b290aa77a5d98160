"""Alembic environment of the hub: always run programmatically by :func:`starnode.hub.db.migrate`
on the connection it hands over (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

from starnode.hub.db import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
