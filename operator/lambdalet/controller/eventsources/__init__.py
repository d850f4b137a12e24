"""The EventSource side of the operator: which dispatcher replicas are live (``membership``,
pure, fed by ``dispatchers``), the status and assignment each EventSource shows (``status``,
pure), and the workers that write it (``reconciler``)."""
