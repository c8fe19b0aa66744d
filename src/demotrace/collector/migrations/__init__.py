"""Alembic migrations of the collector database (run by :func:`demotrace.collector.db.migrate`)."""
