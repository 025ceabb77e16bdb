"""Metrics, probes, endpoints and logs of a running consumer process."""
