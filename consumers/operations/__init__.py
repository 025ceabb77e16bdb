"""Operator work on projections, behind the CLI commands of the same names.

* ``live``: ``consume`` — run the active generation and follow swaps;
* ``rebuild``: a new generation from the beginning, then an atomic swap; rollback, cleanup;
* ``replay``: rewind a live projection to a time or offsets;
* ``status``: where each projection and partition is, and how far behind;
* ``dead_letters``: replaying dead letters into their projection, exactly once.
"""
