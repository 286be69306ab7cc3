"""The registry: accounts, projects, datasets and grants in a relational database.

``open_registry`` connects to a deployment's database (SQLite by default, PostgreSQL by URL)
and checks that its schema has been created.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from srs.governance.registry.database import (
    DatabaseError,
    create_registry_engine,
    require_schema,
    session_factory,
    upgrade_schema,
)


@dataclass
class Registry:
    """A connected registry: the engine and a session maker bound to it."""

    engine: Engine
    sessions: sessionmaker[Session]

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_registry(database_url: str, *, migrate: bool = False) -> Registry:
    """Connect to the registry at ``database_url``; with ``migrate`` bring its schema up to date."""
    engine = create_registry_engine(database_url)
    if migrate:
        upgrade_schema(engine)
    else:
        require_schema(engine)
    return Registry(engine=engine, sessions=session_factory(engine))


__all__ = ["DatabaseError", "Registry", "open_registry"]
