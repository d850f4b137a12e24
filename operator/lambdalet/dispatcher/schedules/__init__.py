"""Schedule EventSources: what to fire and when (``plan``, pure) and the loop that fires it
(``loop``); what an expression means is ``lambdalet.api.schedule``."""
