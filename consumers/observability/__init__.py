"""Metrics, probes, endpoints and logs of a running consumer process.

* ``metrics``: every Prometheus metric, on a registry built at start-up;
* ``observer``: the loop's hooks → metrics and logs, client statistics;
* ``collector``: scrape-time series of each runner (books, positions, probes);
* ``health``: liveness and readiness from plain snapshots;
* ``endpoints``: ``/metrics``, ``/healthz``, ``/readyz``;
* ``logs``: structured logs with secrets masked;
* ``exporter``: the wiring of all of the above for one process.
"""
