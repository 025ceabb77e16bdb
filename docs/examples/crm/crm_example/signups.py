"""Sign-ups per country: each customer counts once, in the country of its first event."""

from collections.abc import Sequence

from sqlalchemy import BigInteger, Column, Connection, DateTime, MetaData, String, Table

from projections import ApplyResult, Event, Projection
from projections.writes import add_counts, insert_absent


class SignupsByCountry(Projection):
    name = "crm_signups"
    version = 1
    topics = ("crm.customers",)

    def define_tables(self, metadata: MetaData) -> None:
        self.first_seen = Table(
            self.table_name("crm_first_seen"),
            metadata,
            Column("customer_id", String(200), primary_key=True),
            Column("country", String(2), nullable=False),
            Column("signed_up_at", DateTime(timezone=True), nullable=False),
        )
        self.by_country = Table(
            self.table_name("crm_signups_by_country"),
            metadata,
            Column("country", String(2), primary_key=True),
            Column("customers", BigInteger, nullable=False),
            Column("first_signup_at", DateTime(timezone=True)),
            Column("last_signup_at", DateTime(timezone=True)),
        )

    def apply(self, conn: Connection, events: Sequence[Event]) -> ApplyResult:
        updates = [e.data for e in events if e.event_type == "crm.CustomerUpdated"]
        seen = [
            {
                "customer_id": u["customer_id"],
                "country": u["country"],
                "signed_up_at": u["updated_at"],
            }
            for u in updates
        ]
        new = insert_absent(conn, self.first_seen, seen)  # a customer counts once, ever
        add_counts(
            conn,
            self.by_country,
            [
                {
                    "country": n["country"],
                    "customers": 1,
                    "first_signup_at": n["signed_up_at"],
                    "last_signup_at": n["signed_up_at"],
                }
                for n in new
            ],
            add=["customers"],
            least=["first_signup_at"],
            greatest=["last_signup_at"],
        )
        return ApplyResult(applied=len(new), stale=len(updates) - len(new))
