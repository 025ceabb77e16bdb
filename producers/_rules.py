"""Input rules of the command services, checked before anything is written."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from producers.command_errors import InvalidCommand
from schemas import MAX_ORDER_TOTAL_MINOR, check_email_address

__all__ = ["ID_PATTERN", "check_id", "check_order", "check_post", "normalise_tags", "slugify"]

MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_TAGS = 20
MAX_TAG = 64
MAX_LINES = 100
MAX_NAME = 200  # ids and names: the width of their columns
MAX_SKU = 64
MAX_QUANTITY = 1_000_000  # the schema's quantity is a 32-bit int
MAX_UNIT_PRICE = 10**12  # minor units; keeps totals far inside a 64-bit long
MAX_VERSION = 2**63 - 1  # a BIGINT column
#: ids the command side accepts (post_id, order_id, customer_id): RFC 3986's unreserved
#: characters, so an id is a URL path segment and a header value as it is.
ID_PATTERN = r"^[A-Za-z0-9._~-]{1,200}$"
_ID = re.compile(ID_PATTERN)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def normalise_tags(tags: Sequence[str]) -> list[str]:
    """Trimmed, lower-case, first occurrence kept (a tag is one word of the cloud)."""
    return list(dict.fromkeys(t.strip().lower() for t in tags))


def slugify(title: str) -> str:
    return _SLUG_JUNK.sub("-", title.lower()).strip("-")[:MAX_TITLE] or "post"


def check_id(name: str, value: str) -> None:
    """Refuse an id outside :data:`ID_PATTERN` (letters, digits, ``. _ ~ -``; 1-200)."""
    if _ID.fullmatch(value) is None:
        raise InvalidCommand([f"{name}: must be 1-{MAX_NAME} of A-Z a-z 0-9 . _ ~ -"])


def _no_nul(problems: list[str], **fields: str) -> None:
    problems.extend(f"{name}: must not contain NUL" for name, v in fields.items() if "\x00" in v)


def _has_control(value: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value)


def check_post(
    *, title: str, description: str, tags: Sequence[str], author: str | None = None
) -> None:
    problems: list[str] = []
    _no_nul(problems, title=title, description=description, author=author or "")
    if not title.strip():
        problems.append("title: must not be blank")
    elif len(title) > MAX_TITLE:
        problems.append(f"title: at most {MAX_TITLE} characters")
    if len(description) > MAX_DESCRIPTION:
        problems.append(f"description: at most {MAX_DESCRIPTION} characters")
    if author is not None and not author.strip():
        problems.append("author: must not be blank")
    elif author is not None and len(author) > MAX_NAME:
        problems.append(f"author: at most {MAX_NAME} characters")
    elif author is not None and _has_control(author):
        problems.append("author: must not contain control characters")
    if len(tags) > MAX_TAGS:
        problems.append(f"tags: at most {MAX_TAGS}")
    for tag in tags:
        # The length that counts is the stored one: lower-casing may lengthen ("İ" → "i̇").
        stored = tag.strip().lower()
        if not stored or len(stored) > MAX_TAG or "\x00" in tag:
            problems.append(f"tags: {tag[:80]!r} must be 1-{MAX_TAG} characters, no NUL")
    if problems:
        raise InvalidCommand(problems)


def check_order(
    *, customer_id: str, customer_email: str, currency: str, lines: Sequence[dict[str, Any]]
) -> None:
    problems = []
    if _ID.fullmatch(customer_id) is None:
        problems.append(f"customer_id: must be 1-{MAX_NAME} of A-Z a-z 0-9 . _ ~ -")
    email_problem = check_email_address(customer_email)
    if email_problem is not None:
        problems.append(f"customer_email: {email_problem}")
    if not (
        len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()
    ):
        problems.append(f"currency: {currency[:10]!r} is not an ISO 4217 code (e.g. EUR)")
    if not lines:
        problems.append("lines: an order needs at least one line")
    elif len(lines) > MAX_LINES:
        problems.append(f"lines: at most {MAX_LINES}")
    for i, line in enumerate(lines):
        sku = str(line.get("sku", ""))
        if not sku.strip() or len(sku) > MAX_SKU or _has_control(sku):
            problems.append(f"lines[{i}].sku: must be 1-{MAX_SKU} characters, no control ones")
        if not 0 < int(line.get("quantity", 0)) <= MAX_QUANTITY:
            problems.append(f"lines[{i}].quantity: must be 1-{MAX_QUANTITY:,}")
        if not 0 <= int(line.get("unit_price_minor", -1)) <= MAX_UNIT_PRICE:
            problems.append(f"lines[{i}].unit_price_minor: must be 0-{MAX_UNIT_PRICE:,}")
    if not problems:
        total = sum(int(x["quantity"]) * int(x["unit_price_minor"]) for x in lines)
        if total > MAX_ORDER_TOTAL_MINOR:
            problems.append(f"lines: the order's total is above {MAX_ORDER_TOTAL_MINOR:,}")
    if problems:
        raise InvalidCommand(problems)
