"""The queue kinds: one module per broker behind the ``Source`` contract (``source``), listed in
``registry``: ``redis_streams``, ``rabbitmq``, ``nats`` (JetStream) and ``sqs``."""
