"""Command side: the event publisher and the sample-data generator.

``producers`` depends on ``schemas`` only.
"""

from producers.publisher import EventPublisher, PublishError, PublishFailure
from producers.sample import SampleEvent, SampleStream, blog_events, order_events, with_noise

__all__ = [
    "EventPublisher",
    "PublishError",
    "PublishFailure",
    "SampleEvent",
    "SampleStream",
    "blog_events",
    "order_events",
    "with_noise",
]
