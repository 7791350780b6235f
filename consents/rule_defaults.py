"""The defaults of RULES.md's settings, in one place: read by config/settings.py (which must not
import app code that needs Django) and by ``rules.RuleSettings``."""

from __future__ import annotations

RETENTION_YEARS = 3
DOI_TTL_DAYS = 7
REPERMISSION_WINDOW_DAYS = 30
CALLBACK_VALIDITY_DAYS = 30
GENERIC_LOCAL_PARTS = [
    "info",
    "contact",
    "hello",
    "bonjour",
    "sales",
    "vente",
    "ventes",
    "commercial",
    "admin",
    "support",
    "service",
    "accueil",
    "office",
    "team",
    "equipe",
    "marketing",
    "compta",
    "rh",
    "jobs",
    "recrutement",
    "direction",
    "secretariat",
    "reception",
]
