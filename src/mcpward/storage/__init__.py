"""Storage behind typed contracts: ``contracts`` (one Protocol per concern), ``records``,
the schema and its Alembic migrations, and the SQL backend (``sql``, SQLite and PostgreSQL).
"""
