"""The operator: kopf handlers (``handlers``) that queue work for the Function side
(``functions``) and the EventSource side (``eventsources``); leader election (``leader``) and the
process (``run``); the autoscaler it hosts is ``lambdalet.autoscaler``."""
