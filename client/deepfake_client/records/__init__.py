"""Prediction records: every verdict kept in a database (SQLite by default, PostgreSQL by URL).

Needs the client's `records` extra (SQLAlchemy, Alembic; psycopg for PostgreSQL; pyarrow for
Parquet exports). `capture` builds records, `writer.RecordWriter` writes them off the request
path, `store.RecordStore` reads, deletes and prunes them, `export` writes CSV, Parquet and MLflow.
"""
