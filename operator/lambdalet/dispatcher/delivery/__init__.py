"""From received messages to the Function and back: batches (``loop``), SQS events
(``records``), the activator's Invoke API (``invoker``) and what becomes of each message
(``outcome``)."""
