"""Synthetic CRM records: the same id always yields the same record, in every process."""

from __future__ import annotations

import hashlib
import re
from typing import Any

CUSTOMER_NUMBERS = range(1001, 2000)  # c_1001 ... c_1999
INVOICE_NUMBERS = range(2001, 3000)  # i_2001 ... i_2999
# Named customers the fault behaviours point at; they exist like any other customer.
SPECIAL_CUSTOMERS = ("c_flaky", "c_down", "c_slow", "c_missing", "c_invalid")

# ASCII digits only: `\d` would also accept e.g. Arabic-Indic digits, which int() parses.
_CUSTOMER_ID = re.compile(r"c_([0-9]{4})")
_INVOICE_ID = re.compile(r"i_([0-9]{4})")

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_COUNTRIES = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "SE")
_CURRENCIES = ("EUR", "USD", "GBP")


def _number(pattern: re.Pattern[str], record_id: str, numbers: range) -> int | None:
    match = pattern.fullmatch(record_id)
    if match is None:
        return None
    number = int(match.group(1))
    return number if number in numbers else None


def _stable_number(name: str) -> int:
    """A stable pseudo-number for a named record, so its fields vary like numbered ones."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def customer_for_invoice(number: int) -> str:
    """i_2xxx belongs to c_1xxx: easy to read in a test (i_2002 is c_1002's invoice)."""
    return f"c_{number - 1000}"


def base_customer(customer_id: str) -> dict[str, Any] | None:
    """The CRM customer as first created (version 1), or None if there is no such customer."""
    number = _number(_CUSTOMER_ID, customer_id, CUSTOMER_NUMBERS)
    if number is None:
        if customer_id not in SPECIAL_CUSTOMERS:
            return None
        number = _stable_number(customer_id)
    first = _FIRST[number % len(_FIRST)]
    last = _LAST[(number // len(_FIRST)) % len(_LAST)]
    return {
        "id": customer_id,
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{customer_id}@example.com".lower(),
        "country": _COUNTRIES[number % len(_COUNTRIES)],
        "version": 1,
    }


def base_invoice(invoice_id: str) -> dict[str, Any] | None:
    """The CRM invoice as first created (version 1), or None if there is no such invoice."""
    number = _number(_INVOICE_ID, invoice_id, INVOICE_NUMBERS)
    if number is None:
        return None
    return {
        "id": invoice_id,
        "customer_id": customer_for_invoice(number),
        "amount_cents": 1000 + (number * 7919) % 99_000,
        "currency": _CURRENCIES[number % len(_CURRENCIES)],
        "description": f"Subscription, invoice {invoice_id}",
        "version": 1,
    }


def invalid_customer(customer_id: str) -> dict[str, Any]:
    """A customer record any sane validator refuses: empty name, malformed email."""
    return {"id": customer_id, "name": "", "email": "not-an-email", "country": "", "version": 1}


def invalid_invoice(invoice_id: str) -> dict[str, Any]:
    """An invoice record any sane validator refuses: negative amount, no currency."""
    return {
        "id": invoice_id,
        "customer_id": "",
        "amount_cents": -1,
        "currency": "",
        "description": "",
        "version": 1,
    }
