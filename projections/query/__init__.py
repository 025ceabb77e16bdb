"""The query side: SQL reads over the read models (``read_models``) and the HTTP API (``api``)."""
