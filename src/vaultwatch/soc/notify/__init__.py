"""Notifications: the outbox every page and customer update goes through, and its senders.

Domain code only ever queues (`queue_notification`) inside its own
transaction, so a page exists exactly when the state change that caused it
committed. Delivery (`deliver_due`) is a separate duty that claims, sends and
records each row, on whichever node runs it.
"""

from vaultwatch.soc.notify.outbox import (
    DeliveryError,
    DeliveryReport,
    OutgoingMessage,
    Sender,
    deliver_due,
    queue_notification,
    retry_delay,
)

__all__ = [
    "DeliveryError",
    "DeliveryReport",
    "OutgoingMessage",
    "Sender",
    "deliver_due",
    "queue_notification",
    "retry_delay",
]
