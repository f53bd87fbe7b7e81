"""Engines and migrations for the ticket store (SQLite in WAL mode, or PostgreSQL).

``make_engine(db_url)`` returns an engine tuned for the backend; ``migrate(engine)``
brings the schema to the newest Alembic revision (run on every start-up; safe to run
from several processes at once on PostgreSQL thanks to an advisory lock).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tickets.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATE_LOCK = 0x6757_7469  # "gWti": advisory lock id for concurrent migrations

# Read-only sessions skip SQLite's immediate write lock.
READ_OPTION = "gw_read"


def normalise_url(db_url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs."""
    if db_url.startswith("postgresql://") or db_url.startswith("postgres://"):
        return "postgresql+psycopg://" + db_url.split("://", 1)[1]
    return db_url


def make_engine(db_url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """An engine for ``db_url``; SQLite gets WAL, a busy timeout and immediate writes."""
    url_text = normalise_url(db_url)
    try:
        url = make_url(url_text)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL: {exc}") from exc
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)
        _sqlite_events(engine)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        return create_engine(url, **kwargs)
    raise StoreError(f"unsupported database backend {url.get_backend_name()!r}")


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, issue BEGIN (so it can be BEGIN IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock up front: no deadlocked read→write upgrades.
        if conn.get_execution_options().get(READ_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine.execution_options(**{READ_OPTION: True}), expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest)."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATE_LOCK})
                conn.commit()
            try:
                cfg = alembic_config(engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATE_LOCK})
                    conn.commit()
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the ticket database: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the ticket database failed: {exc}") from exc
    log.info("tickets schema migrated revision=%s backend=%s", revision, engine.dialect.name)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
