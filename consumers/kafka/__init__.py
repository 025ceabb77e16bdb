"""Kafka adapters: everything that talks to a broker, and nothing that knows SQL.

* ``config``: librdkafka configuration (client, consumer, producer) from the settings;
* ``admin``: creating topics, purging dead-letter topics;
* ``message``: the slice of a Kafka message the runtime uses (a protocol);
* ``dead_letters``: the dead-letter sink (send and wait for acks) and the reader;
* ``watermarks``: low/high watermarks from fetch responses, offsets for a time;
* ``broker``: the embedded Tansu broker of the demo and the tests.
"""
