"""The query side: SQL reads over the read models and the HTTP query API."""
