"""Ages given on the command line: ``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or bare seconds."""

from __future__ import annotations

import math

import click

from syncbridge.config import MAX_SECONDS

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str, option: str) -> float:
    """Seconds in ``text``; a usage error naming ``option`` unless it is between 0 and
    100 years."""
    unit = text[-1:].lower()
    try:
        value = float(text[:-1]) if unit in UNITS else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a duration like 7d, 12h or 30m", param_hint=option
        ) from None
    seconds = value * UNITS.get(unit, 1)
    if not math.isfinite(seconds) or seconds < 0:
        raise click.BadParameter(
            f"{text!r}: the age must be a finite, non-negative duration", param_hint=option
        )
    if seconds > MAX_SECONDS:
        raise click.BadParameter(
            f"{text!r}: the age must be at most 100 years ({MAX_SECONDS} seconds)",
            param_hint=option,
        )
    return seconds
