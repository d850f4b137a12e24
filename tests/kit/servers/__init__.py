"""Real servers on loopback for the tests, one module each: ``agent`` (the function-pod agent),
``redis``, ``rabbitmq``, ``nats``, ``elasticmq`` (SQS), ``minio`` (S3). ``process`` holds what
they share: waiting for a child to be ready, and stopping it."""
