"""Money as integer minor units, shown as exact decimal text (never a float)."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["format_amount", "minor_unit_exponent"]

# ISO 4217 currencies whose minor unit is not 1/100 (the common ones).
_EXPONENTS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3}


def minor_unit_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def format_amount(minor: int, currency: str) -> str:
    """Exact decimal text of ``minor`` units: ``format_amount(1999, "EUR") == "19.99"``."""
    return str(Decimal(minor).scaleb(-minor_unit_exponent(currency)))
