"""CRM read models on Projectionist: ``crm.Customer*`` events, two projections."""

from pathlib import Path

#: the folder of this package's Avro schemas (entry point ``projectionist.schemas``)
SCHEMAS = Path(__file__).parent / "schemas"

__all__ = ["SCHEMAS"]
