"""The compliance officers' admin, one module per room:

- ``site``: the admin site (a second factor for every login, idle sessions logged out) and the
  app config ``INSTALLED_APPS`` names;
- ``contacts``: the page on a person (ledger, current state, decision panel, exports, erasure,
  a new email address);
- ``ledger``: events, evidence, projections and the compliance records, read-only;
- ``notices``: topics, notices and their re-confirmation campaigns, the catalog, the stores;
- ``outbox``: the outbox, webhook endpoints and deliveries, imports;
- ``dashboards``: the dashboards and the retention report;
- ``staff`` and ``twofactor``: staff accounts and their second factor;
- ``common``: what the pages share (read-only admins, the search for a contact).

This package is imported with the app config, before the models are loaded: it imports none of
them, and ``site.AssentAdminConfig.ready`` imports the modules that register the pages.
"""
