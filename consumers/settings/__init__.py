"""Typed, frozen settings from ``PROJECTIONIST_*`` environment variables (see ``models``)."""
