"""``driver_message``: what the worker, ``migrate``, readiness and the bench show of a database
error: the driver's first line, never SQLAlchemy's statement dump, never an IndexError."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from syncbridge.db.engine import driver_message


class DriverError(Exception):
    pass


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('connection refused\n\tIs the server running on "127.0.0.1"?', "connection refused"),
        (
            "\n  server closed the connection unexpectedly\nmore",
            "server closed the connection unexpectedly",
        ),
        ("", "DriverError"),
        ("   \n ", "DriverError"),
    ],
)
def test_the_drivers_first_line_or_its_class(text: str, shown: str) -> None:
    exc = OperationalError("SELECT 1 -- the statement", {"p": 1}, DriverError(text))
    assert driver_message(exc) == shown


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (
            TimeoutError("QueuePool limit of size 5 reached\nmore"),
            "QueuePool limit of size 5 reached",
        ),
        (DriverError(""), "DriverError"),
    ],
)
def test_an_error_that_wraps_no_driver_error_gives_its_own(exc: Exception, shown: str) -> None:
    # The LISTEN thread (psycopg's own errors) and the metrics scrape (any SQLAlchemyError).
    assert driver_message(exc) == shown
