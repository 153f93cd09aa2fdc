"""Persistence: SQLAlchemy models (the read model and records), sessions, migrations, audit."""
