"""Alembic migrations for syncbridge (run with ``syncbridge migrate``)."""
