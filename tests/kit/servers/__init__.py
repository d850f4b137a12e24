"""Real servers for the tests, one module each: ``agent`` (the function-pod agent), ``redis``,
``rabbitmq``, ``nats``, ``elasticmq`` (SQS), ``minio`` (S3); ``kube`` (the Kubernetes beds of
e2e/cluster/cluster.sh and a handle on one) with ``controlplane`` (its fixtures); ``operator``,
``activator`` and ``dispatcher`` (Lambdalet's components as processes, on ``cli``). ``process``
holds what the broker launchers share: waiting for a child to be ready, and stopping it."""
