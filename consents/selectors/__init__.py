"""Reads of the system of record: what the admin, the pages and the API show (``proof``: one
contact's proof, data and decisions; ``dashboards``: counts over the ledger). Nothing here
writes."""
