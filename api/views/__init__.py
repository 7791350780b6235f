"""The integration API, ``/api/v1/``, one module per resource: it calls the services and selectors
the pages call, and never writes the ledger itself."""
