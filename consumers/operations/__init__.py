"""Operator work on projections: rebuild, replay, status and dead-letter replay."""
