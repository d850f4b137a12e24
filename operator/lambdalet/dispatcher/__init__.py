"""The event dispatcher: reads queues, receives bucket notifications, fires schedules, and invokes
Functions through the activator with the event shapes AWS uses.

Path of a queue message: a ``source`` module per broker (``redis_streams``, ``rabbitmq``,
``nats``, ``sqs``) receives broker messages as ``source.Message`` values; ``delivery`` gathers
them into batches (``batchSize``, ``batchWindowSeconds``), ``records`` shapes a batch into an SQS
event, the ``invoker`` calls the Function through the activator's Invoke API, ``outcome`` decides
from the answer which messages are acknowledged, retried or dead-lettered, and the source carries
that out. Bucket notifications (``s3``) and schedules (``schedule``) push events instead of
polling; they are invoked the same way.
"""
