"""Alembic environment: migrations run on the connection :func:`~demotrace.collector.db.migrate`
hands over, inside its transaction and lock."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
