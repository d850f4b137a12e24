"""The key of every namespaced object the components track: ``(namespace, name)``.

One type for Functions and EventSources alike, so a Function's key means the same thing to the
activator, the autoscaler, the controller and the dispatcher, and a value moves between them
without translation.
"""

from __future__ import annotations

Key = tuple[str, str]  # (namespace, name)
