"""Input rules of the command services, checked before anything is written."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from producers.command_errors import InvalidCommand

__all__ = ["check_order", "check_post", "normalise_tags", "slugify"]

MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
MAX_TAGS = 20
MAX_TAG = 64
MAX_LINES = 100
MAX_NAME = 200  # ids and names: the width of their columns
MAX_SKU = 64
MAX_QUANTITY = 1_000_000  # the schema's quantity is a 32-bit int
MAX_UNIT_PRICE = 10**12  # minor units; keeps totals far inside a 64-bit long
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_tags(tags: Sequence[str]) -> list[str]:
    """Trimmed, lower-case, first occurrence kept (a tag is one word of the cloud)."""
    return list(dict.fromkeys(t.strip().lower() for t in tags))


def slugify(title: str) -> str:
    return _SLUG_JUNK.sub("-", title.lower()).strip("-")[:MAX_TITLE] or "post"


def check_post(
    *, title: str, description: str, tags: Sequence[str], author: str | None = None
) -> None:
    problems = []
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
    if len(tags) > MAX_TAGS:
        problems.append(f"tags: at most {MAX_TAGS}")
    for tag in tags:
        if not tag.strip() or len(tag.strip()) > MAX_TAG:
            problems.append(f"tags: {tag!r} must be 1-{MAX_TAG} characters")
    if problems:
        raise InvalidCommand(problems)


def check_order(
    *, customer_id: str, customer_email: str, currency: str, lines: Sequence[dict[str, Any]]
) -> None:
    problems = []
    if not customer_id.strip():
        problems.append("customer_id: must not be blank")
    elif len(customer_id) > MAX_NAME:
        problems.append(f"customer_id: at most {MAX_NAME} characters")
    if not _EMAIL.match(customer_email) or len(customer_email) > 320:
        problems.append(f"customer_email: {customer_email!r} is not an e-mail address")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        problems.append(f"currency: {currency!r} is not an ISO 4217 code (e.g. EUR)")
    if not lines:
        problems.append("lines: an order needs at least one line")
    elif len(lines) > MAX_LINES:
        problems.append(f"lines: at most {MAX_LINES}")
    for i, line in enumerate(lines):
        if not str(line.get("sku", "")).strip() or len(str(line.get("sku"))) > MAX_SKU:
            problems.append(f"lines[{i}].sku: must be 1-{MAX_SKU} characters")
        if not 0 < int(line.get("quantity", 0)) <= MAX_QUANTITY:
            problems.append(f"lines[{i}].quantity: must be 1-{MAX_QUANTITY:,}")
        if not 0 <= int(line.get("unit_price_minor", -1)) <= MAX_UNIT_PRICE:
            problems.append(f"lines[{i}].unit_price_minor: must be 0-{MAX_UNIT_PRICE:,}")
    if problems:
        raise InvalidCommand(problems)
