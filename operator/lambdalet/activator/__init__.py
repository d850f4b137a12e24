"""The activator: the HTTP entry of every Function.

Request path: a client's request arrives at ``http1`` (a lean asyncio + httptools HTTP/1.1
server) and ``app``, is routed by ``routes`` to a Function, shaped into an API Gateway event by
``events``, admitted or held by ``proxy`` (the rules -- reserved concurrency, the cold-start
buffer, each pod's concurrency -- are in ``admission``) and sent to a ready pod over
``upstream``'s keep-alive connections; the pod's answer is shaped back into an HTTP response by
``responses``. ``app`` also serves Lambda's Invoke API. Asynchronous invocations (``Event``) go
onto Redis Streams (``asyncinvoke``) and are invoked from there with
retries. ``kube`` keeps the Functions and their ready pods current; ``internal`` takes pod
announcements (verified by ``announce``) and serves metrics; ``stats`` reports in-flight
invocations to the autoscaler and pokes it on a cold start. ``main`` assembles it all.
"""
