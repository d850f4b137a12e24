"""S3 EventSources: MinIO's bucket notifications set up (``notifications``), received
(``receiver``) and turned into AWS S3 records (``events``)."""
