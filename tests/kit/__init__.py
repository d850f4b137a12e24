"""The test kit every tier imports (tests/, e2e/, benchmarks/): ``ports`` (free loopback
ports), ``wait`` (bounded waits on a predicate, sync and async), ``clock`` (simulated time),
``invokers`` (stand-ins for a Function behind the invocation seams), ``cgroups`` (a memory
cgroup for the out-of-memory tests), ``paths`` (where the repository is), ``readme`` (the
commands README.md gives), ``runtimes`` (the interpreter versions the runtime images pin) and
``servers`` (real servers, one module each: the agent, Redis, RabbitMQ, NATS, ElasticMQ, MinIO,
the Kubernetes beds of e2e/cluster/cluster.sh with the control plane's fixtures, and Lambdalet's
own operator, activator and dispatcher as processes).

Tests of broker and Kubernetes behaviour run against the real servers; the fakes here stand only
where a test is about Lambdalet's own decisions.
"""
