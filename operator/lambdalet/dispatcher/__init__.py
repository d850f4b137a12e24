"""The event dispatcher: reads queues, receives bucket notifications, fires schedules, and invokes
Functions through the activator with the event shapes AWS uses.

Its rooms:

- ``replica``: which EventSources this replica runs, and their status. ``membership`` keeps the
  replica's Lease, ``supervisor`` watches the EventSources assigned to it and their Functions,
  ``runners`` builds and runs one runner per EventSource, ``status`` writes the dispatcher's part
  of the EventSource status.
- ``sources``: one module per broker (``redis_streams``, ``rabbitmq``, ``nats``, ``sqs``) behind
  the ``Source`` contract (``sources.source``), listed in ``sources.registry``.
- ``delivery``: from received messages to the Function and back. ``delivery.loop`` gathers
  messages into batches (``batchSize``, ``batchWindowSeconds``), ``records`` shapes a batch into
  an SQS event, the ``invoker`` calls the Function through the activator's Invoke API, and
  ``outcome`` decides from the answer which messages are acknowledged, retried or dead-lettered;
  the source carries that out.
- ``s3``: bucket notifications, pushed by MinIO rather than polled (``notifications`` sets them
  up, ``receiver`` takes them, ``events`` rebuilds AWS S3 records).
- ``schedules``: ``plan`` says what to fire and when, ``loop`` fires it.

``main`` assembles them; ``settings`` and ``metrics`` serve the whole process.
"""
