"""Kafka adapters: client configuration, the message seam, dead letters, watermarks, the broker."""
