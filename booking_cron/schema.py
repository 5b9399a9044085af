"""`db upgrade`: applies the SQL migrations in booking_cron/migrations with yoyo-migrations."""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _yoyo_url(url: str) -> str:
    # yoyo picks its driver from the scheme: postgresql+psycopg is psycopg 3.
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def upgrade(url: str) -> list[str]:
    """Apply every migration not applied yet; returns their ids. Safe to repeat.

    The post-apply hooks (the API lockdown) run every time, even with nothing pending: an upgrade
    also takes back what default privileges or a hand-made grant opened since the last one."""
    backend = get_backend(_yoyo_url(url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations_only(pending)
        backend.run_post_apply(migrations)
    return [m.id for m in pending]
