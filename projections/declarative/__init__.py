"""Declarative table projections: "table T from event E on topic X, newest row per key K by
field V", from a TOML file, no code (``spec`` reads the file, ``columns`` types the columns
from the Avro schema, ``projection`` is the :class:`~projections.Projection` that runs it).
"""
