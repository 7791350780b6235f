"""The public pages, one module per page: sign-up and its confirmation (``signup``), the
unsubscribe link (``unsubscribe``), the preference page and the way into it
(``preference_center``), the data download (``data``), the embedded default's mail (``dev_mail``).

Emailed links are opened by mail scanners: a GET only ever shows a page, a POST acts. The single
exception is RFC 8058 one-click unsubscribe, a POST that carries no cookie and no CSRF token.
"""
