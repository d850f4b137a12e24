"""Asynchronous invocations (``InvocationType: Event``): answered 202, kept in Redis, worked off.

``queue`` (``AsyncQueue``: enqueue, depth, and the workers it runs; its docstring states the
guarantees), ``worker`` (one event's attempts), ``store`` (the Redis streams), ``policy`` (retries,
event age, where a failed event goes, pure) and ``options``.
"""
