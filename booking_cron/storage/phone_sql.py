"""A phone number as SQL compares it: its digits and `+` only (`+61 412 345 678` -> `+61412345678`).

The one SQL spelling of that rule; migration 0049's sender functions keep their own copy (migrations
are history)."""

from __future__ import annotations


def phone_digits_sql(expr: str) -> str:
    """SQL for `expr` (a column or a placeholder) with everything but digits and `+` removed."""
    return f"regexp_replace({expr}, '[^0-9+]', '', 'g')"
