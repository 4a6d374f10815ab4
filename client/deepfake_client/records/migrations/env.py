"""Alembic environment: run by `records.store.migrate` on a connection it passes in."""

from alembic import context

from deepfake_client.records.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Several gateway replicas may start together: one migrates, the others wait for it.
        context.execute("SELECT pg_advisory_xact_lock(20200020)")
    context.run_migrations()
