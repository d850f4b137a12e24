"""The replica machinery: this replica's Lease (``membership``), the EventSources assigned to it
(``supervisor``), a runner for each (``runners``) and the status it writes (``status``)."""
