"""Connecting to the registry database and bringing its schema up to date with Alembic.

SQLite (the embedded default) gets write transactions that start with ``BEGIN IMMEDIATE``, so
concurrent writers queue on the database lock instead of failing half-way; PostgreSQL is used
as it is (row locks where the code asks for them).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from srs.errors import SRSError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_SECONDS = 30


class DatabaseError(SRSError):
    """The registry database cannot be reached or is not at the schema this code expects."""


def create_registry_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``).

    ``postgresql://`` URLs are taken to mean the psycopg 3 driver.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"database URL {url!r} is not valid: {exc}. Use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/NAME"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, future=True
        )
        _serialise_sqlite_writers(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True, future=True)


def _serialise_sqlite_writers(engine: Engine) -> None:
    # pysqlite opens transactions lazily and as DEFERRED, so two writers can both read and then
    # deadlock on upgrade. Taking control of BEGIN makes every transaction IMMEDIATE (the
    # recipe in SQLAlchemy's SQLite dialect notes), and foreign keys are switched on.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration pointing at our migrations and bound to ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine) -> None:
    """Apply every migration not yet applied (idempotent)."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot migrate the registry at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from exc


def require_schema(engine: Engine) -> None:
    """Fail with a clear message when the database has no registry tables yet."""
    try:
        tables = set(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise DatabaseError(
            f"cannot reach the registry at {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from exc
    if "researchers" not in tables:
        raise DatabaseError(
            f"the database at {engine.url.render_as_string(hide_password=True)} holds no "
            "registry; run `srs init` first"
        )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session maker whose objects stay readable after commit (the CLI prints them)."""
    return sessionmaker(engine, expire_on_commit=False, future=True)
