"""Generations of a projection: the active pointer, views, replay marks and heartbeats."""
