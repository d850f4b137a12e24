"""The operator: kopf handlers (``handlers``) over pure builders (``resources``, ``status``)."""
