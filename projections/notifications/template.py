"""The "your order was fulfilled" e-mail: plain text and HTML from one order record.

Rendered once, when the notification is recorded, and stored: a re-send after a crash
carries the same bytes and the same ``Message-ID``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from projections.money import format_amount
from schemas.events import OrderFulfilled

__all__ = ["OrderEmail", "build_message", "message_id_for", "render_order_email"]


@dataclass(frozen=True, slots=True)
class OrderEmail:
    subject: str
    text: str
    html: str


def message_id_for(event_id: str, mail_from: str) -> str:
    """A Message-ID derived from the event id alone, so downstream can dedup re-sends."""
    domain = mail_from.rsplit("@", 1)[-1].strip(" >") or "projectionist.invalid"
    return f"<{event_id}@{domain}>"  # short enough that the header is never folded


def render_order_email(order: OrderFulfilled) -> OrderEmail:
    """Subject and bodies for an ``orders.OrderFulfilled`` record."""
    currency = order["currency"]
    lines = order["lines"]
    total = format_amount(int(order["total_minor"]), currency)
    subject = f"Your order {order['order_id']} is on its way"
    width = max(len(str(line["sku"])) for line in lines)
    text_rows = [
        f"  {line['sku']:<{width}}  {line['quantity']:>3} x "
        f"{format_amount(int(line['unit_price_minor']), currency):>10} {currency}"
        for line in lines
    ]
    text = "\n".join(
        [
            "Hello,",
            "",
            f"your order {order['order_id']} was fulfilled and is on its way.",
            "",
            *text_rows,
            "",
            f"  Total: {total} {currency}",
            "",
            "Thank you for your order.",
        ]
    )
    e = html.escape
    html_rows = "".join(
        f"<tr><td>{e(str(line['sku']))}</td><td>{int(line['quantity'])}</td>"
        f"<td>{format_amount(int(line['unit_price_minor']), currency)} {e(currency)}</td></tr>"
        for line in lines
    )
    body = (
        "<!doctype html><html><body>"
        f"<p>Hello,</p><p>your order <b>{e(order['order_id'])}</b> was fulfilled "
        "and is on its way.</p>"
        "<table><thead><tr><th>Item</th><th>Qty</th><th>Unit price</th></tr></thead>"
        f"<tbody>{html_rows}</tbody></table>"
        f"<p><b>Total: {total} {e(currency)}</b></p>"
        "<p>Thank you for your order.</p></body></html>"
    )
    return OrderEmail(subject=subject, text=text, html=body)


def build_message(
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html_body: str,
    message_id: str,
    event_id: str,
    date: datetime,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date)
    msg["X-Projectionist-Event-Id"] = event_id
    msg.set_content(text)
    msg.add_alternative(html_body, subtype="html")
    return msg
