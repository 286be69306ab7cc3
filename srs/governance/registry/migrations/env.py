"""Alembic environment: runs migrations on the engine handed over by srs.governance.registry.database."""

from alembic import context

from srs.governance.registry.models import Base

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through srs.governance.registry.database.upgrade_schema")

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
