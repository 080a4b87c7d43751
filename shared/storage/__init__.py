"""The event storage account (EVENTS_STORAGE): its connection, the events queue and the
uploads container (``connection``), and where validation and monitor reports are kept
(``reports``: that account's REPORTS_CONTAINER, or the state directory locally)."""
