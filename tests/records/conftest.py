"""Record databases for the tests: a SQLite file, and a real PostgreSQL server started here."""

from __future__ import annotations

import pytest
from records_postgres import TemporaryPostgres, binaries

pytest.importorskip("sqlalchemy", reason="the records extra (sqlalchemy, alembic) is not installed")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (stopped and removed at the end)."""
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl): apt-get install postgresql (`make test` does)")
    server = TemporaryPostgres(bin_dir)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty record database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite'}"
    server = request.getfixturevalue("postgres")
    from sqlalchemy import create_engine, text

    from deepfake_client.records.store import normalise_url

    database = f"test_{abs(hash(request.node.nodeid)) % 10**9}"
    engine = create_engine(normalise_url(server.url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{database}"'))
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    return server.url.rsplit("/", 1)[0] + "/" + database
