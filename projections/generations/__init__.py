"""Generations of a projection: which one queries read, and who is running which.

* ``versions``: the active-generation pointer, the views over it, the epoch, the swap;
* ``replay_marks``: how far each partition had got before a replay rewound it;
* ``heartbeats``: one row per running consumer process, and the partitions each owns;
* ``pauses``: the projections an operator paused (``projectionist pause``);
* ``status``: what the database knows, for ``projectionist status``.
"""
