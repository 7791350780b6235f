"""Assent settings: one module, every knob from the environment.

With no environment at all Assent runs the *embedded default*: SQLite under ``var/``, Celery
tasks executed in-process and mail written to files under ``var/mail/``. Production sets
``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``DEBUG=False`` and an email backend.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from consents import rule_defaults

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is a convenience for developers; the real environment always wins.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var")))
# The embedded default keeps its database and mail here; creating it is harmless elsewhere.
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
_DEV_SECRET_KEY = "insecure-embedded-default-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET_KEY)
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is missing or too short. Set SECRET_KEY to a random string "
        "of at least 32 characters, for example the output of: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The address of this site in emailed links, List-Unsubscribe and recorded collection points.
# Unset, it is the address the development server runs on (``make run HOST=... PORT=...``).
SITE_URL = env(
    "SITE_URL", default=f"http://{env('HOST', default='127.0.0.1')}:{env('PORT', default='8000')}"
).rstrip("/")
BRAND_NAME = env("BRAND_NAME", default="Assent")
# Who is responsible for the data (GDPR art. 13): named on every customer page, the sign-up
# form and the store tablet, with a link to the company's privacy notice.
CONTROLLER_NAME = env("CONTROLLER_NAME", default=BRAND_NAME)
CONTROLLER_ADDRESS = env("CONTROLLER_ADDRESS", default="")
PRIVACY_NOTICE_URL = env("PRIVACY_NOTICE_URL", default="")

INSTALLED_APPS = [
    # The admin site with a second factor (consents.admin.site.AssentAdminSite).
    "consents.admin.site.AssentAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "consents",
    "preferences",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside whitenoise, so that every response carries the policy, static files included.
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A clear 400 for bodies not in UTF-8 and NUL characters, before anything reads them.
    "config.middleware.UnreadableRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "preferences.context_processors.brand",
            ],
        },
    },
    {
        # The hot part of the preference page (its boxes): several times faster to draw.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "NAME": "jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "config.jinja2.environment"},
    },
]

# --- Database ---------------------------------------------------------------------------------
# No DATABASE_URL: the embedded default, a SQLite file under var/.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'assent.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# The reads of the hottest pages and the ledger's own writes are prepared once per connection on
# PostgreSQL (parsing and planning them cost it about as much as running them). Off behind a
# pooler that hands a session's statements to other connections (PgBouncer in transaction mode).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, sessions, preference pages) ----------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "config.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -------------------------------------------------------------------------------------
# No REDIS_URL: tasks run in-process (eagerly) so the embedded default needs no broker.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
# The queue tasks go to, those the workers queue themselves included (an outbox drain queues one
# send per email): two deployments sharing a Redis each name their own.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest send (acks_late: an unacknowledged task is redelivered after this).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    # Publishing tries to connect once: during a broker outage a request must not wait, the
    # outbox sweep sends later.
    "max_retries": 0,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "outbox-sweep": {"task": "consents.tasks.outbox_sweep", "schedule": 60.0},
    "webhooks-sweep": {"task": "consents.tasks.webhooks_sweep", "schedule": 60.0},
    "link-requests-sweep": {"task": "preferences.tasks.link_requests_sweep", "schedule": 60.0},
    "tracking-drain": {"task": "preferences.tasks.tracking_drain", "schedule": 5.0},
    "signups-purge": {
        "task": "preferences.tasks.signups_purge",
        "schedule": crontab(minute=23),
    },
    "ledger-verify-nightly": {
        "task": "consents.tasks.ledger_verify",
        "schedule": crontab(hour=3, minute=17),
    },
    "ledger-anchor-hourly": {
        "task": "consents.tasks.ledger_anchor",
        "schedule": crontab(minute=41),
    },
    "notice-reconfirm-campaigns": {
        "task": "consents.tasks.reconfirm_campaigns",
        "schedule": 60.0,
    },
    "retention-daily": {
        "task": "consents.tasks.retention_daily",
        "schedule": crontab(hour=4, minute=7),
    },
}

# --- Email --------------------------------------------------------------------------------------
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Assent <no-reply@assent.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Rows still unsent after this are handed to the broker again by the sweep (every minute).
OUTBOX_SWEEP_AFTER = timedelta(minutes=env.int("OUTBOX_SWEEP_AFTER_MINUTES", default=3))
# A failed attempt waits 1, 2, 4, ... minutes (capped at an hour, plus up to 20% jitter) before
# the next; 30 attempts span a little over a day (24 to 29 hours) before the email is given up.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=30)
OUTBOX_RETRY_BASE = timedelta(seconds=env.int("OUTBOX_RETRY_BASE_SECONDS", default=60))
OUTBOX_RETRY_MAX = timedelta(seconds=env.int("OUTBOX_RETRY_MAX_SECONDS", default=3600))
# How long an attempt may take: a row whose sender died mid-send is retried after this, with
# the same Message-ID and idempotency key. Shorter than the provider's idempotency window.
OUTBOX_SEND_LEASE = timedelta(seconds=env.int("OUTBOX_SEND_LEASE_SECONDS", default=300))
# The header that carries the row's idempotency key to the email service, for services that
# honour one (Brevo: "idempotencyKey", through django-anymail's headers); empty: none.
OUTBOX_IDEMPOTENCY_HEADER = env(
    "OUTBOX_IDEMPOTENCY_HEADER",
    default="idempotencyKey" if ".brevo." in EMAIL_BACKEND else "",
)
# Every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], e.g. ANYMAIL_SENDGRID_API_KEY.
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in env.ENVIRON.items()
    if key.startswith("ANYMAIL_")
}
# The email service's tracking webhooks (/webhooks/anymail/): bounces, complaints, opt-outs.
# A deployment that does not use them sets this to False and the URLs are not mounted at all.
EMAIL_TRACKING_WEBHOOKS = env.bool("EMAIL_TRACKING_WEBHOOKS", default=True)
if not DEBUG and EMAIL_TRACKING_WEBHOOKS and not ANYMAIL.get("WEBHOOK_SECRET"):
    # Without the shared secret anyone could post complaints or opt-outs for any address, and
    # the ledger would record them as facts.
    raise ImproperlyConfigured(
        "DEBUG is off and the email-service webhooks are mounted, but ANYMAIL_WEBHOOK_SECRET is "
        "not set: anyone could post forged bounces, complaints or opt-outs. Set "
        "ANYMAIL_WEBHOOK_SECRET to 'user:password' (the basic auth your email service sends), "
        "or set EMAIL_TRACKING_WEBHOOKS=False if this deployment does not use tracking webhooks."
    )

# Opens carry no weight in the rules, and per-person open tracking needs the person's consent
# (CNIL, 2025 draft recommendation on tracking pixels): by default opens are counted per message
# and day, nobody's open is written. True records each open in the person's ledger, for senders
# that collect that consent.
TRACKING_OPENS_PER_PERSON = env.bool("TRACKING_OPENS_PER_PERSON", default=False)
# Tracking events move from the webhook's inbox into the ledger in batches of this size.
TRACKING_DRAIN_BATCH = env.int("TRACKING_DRAIN_BATCH", default=1000)

# --- Outgoing webhooks (Standard Webhooks v1) ---------------------------------------------------
# Endpoint URLs must be https (plain http is for local testing, with DEBUG on) and must not
# resolve to loopback, private, link-local or metadata addresses, checked when saved and again at
# each send; WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True lifts the address check for local testing only.
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=not DEBUG)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
if not DEBUG and WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
    raise ImproperlyConfigured(
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES is for local testing: with DEBUG off it would let an "
        "endpoint reach this network's private services. Unset it."
    )
# How long a receiver has to answer one request (connect, send, answer).
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT_SECONDS", default=20.0)
if not 1 <= WEBHOOK_TIMEOUT <= 30:
    raise ImproperlyConfigured("WEBHOOK_TIMEOUT_SECONDS is between 1 and 30 (default 20).")
# A failed delivery waits 30 s, 1 min, 2 min, ... (doubling, capped at 6 hours, plus up to 20%
# jitter) and is given up after 3 days: about 20 attempts. The receiver's Retry-After is honoured.
WEBHOOK_RETRY_BASE = timedelta(seconds=env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30))
WEBHOOK_RETRY_MAX = timedelta(seconds=env.int("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600))
WEBHOOK_RETRY_FOR = timedelta(hours=env.int("WEBHOOK_RETRY_FOR_HOURS", default=72))
# Rows whose own task never ran (broker down at commit time) are swept after this.
WEBHOOK_SWEEP_AFTER = timedelta(seconds=env.int("WEBHOOK_SWEEP_AFTER_SECONDS", default=120))
# After a rotation, the previous secret keeps signing (beside the new one) for this long.
WEBHOOK_SECRET_OVERLAP = timedelta(hours=env.int("WEBHOOK_SECRET_OVERLAP_HOURS", default=24))

# --- Auth, sessions, security ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        # Staff accounts open the ledger and the store tablets: long passwords, not clever ones.
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Password logins (admin and store) are counted per account and per client address; beyond the
# limit the login is refused, the right password included, until the window ends.
AUTHENTICATION_BACKENDS = ["preferences.logins.ThrottledModelBackend"]
LOGIN_ATTEMPTS_PER_ACCOUNT = env.int("LOGIN_ATTEMPTS_PER_ACCOUNT", default=5)
LOGIN_ATTEMPTS_PER_IP = env.int("LOGIN_ATTEMPTS_PER_IP", default=20)
LOGIN_THROTTLE_WINDOW = timedelta(minutes=env.int("LOGIN_THROTTLE_MINUTES", default=15))
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# Sessions are kept in the database; with Redis, read through the shared cache as well (every
# preference-page read and staff request loads one). Never through a per-process cache.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if REDIS_URL
    else "django.contrib.sessions.backends.db"
)
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
if env.bool("BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Every admin login needs a TOTP second factor. Only the embedded default (DEBUG on) may turn it
# off, for its demo accounts; with DEBUG off it is always required, whatever this says.
ADMIN_REQUIRE_2FA = env.bool("ADMIN_REQUIRE_2FA", default=not DEBUG)
OTP_TOTP_ISSUER = BRAND_NAME
# An admin session left alone this long is logged out (the store's staff timeout, for the admin).
ADMIN_SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("ADMIN_SESSION_IDLE_MINUTES", default=30))
# Lifetime of the one-time link an administrator gives a new account to set up its second factor.
ADMIN_ENROL_LINK_TTL = timedelta(hours=env.int("ADMIN_ENROL_LINK_TTL_HOURS", default=48))
# The suppression list keeps opted-out addresses only as HMACs under this key: a dedicated key,
# derived from SECRET_KEY unless set, so that the list is useless without the deployment's secret.
SUPPRESSION_KEY = env("SUPPRESSION_KEY", default="")
# Rectification (new email), "keep me" (retention) and notice re-confirmation links.
RECTIFY_LINK_TTL = timedelta(days=env.int("RECTIFY_LINK_TTL_DAYS", default=7))
RETENTION_KEEP_LINK_TTL = timedelta(days=env.int("RETENTION_KEEP_LINK_TTL_DAYS", default=60))
RECONFIRM_LINK_TTL = timedelta(days=env.int("RECONFIRM_LINK_TTL_DAYS", default=30))
# Notice re-confirmation campaigns: at most this many emails per run of the campaign task.
RECONFIRM_MAX_PER_RUN = env.int("RECONFIRM_MAX_PER_RUN", default=500)

# --- Store tablet and phone capture -----------------------------------------------------------
STAFF_SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("STAFF_SESSION_IDLE_MINUTES", default=15))
CAPTURE_RATE_PER_DEVICE = env.int("CAPTURE_RATE_PER_DEVICE", default=60)  # per hour
STORE_CUSTOMER_IDLE_SECONDS = env.int("STORE_CUSTOMER_IDLE_SECONDS", default=120)
STORE_THANKS_SECONDS = env.int("STORE_THANKS_SECONDS", default=6)

# --- Internationalisation ----------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# English dates for European readers: 12 March 2026, 14:05 (never 03/12/2026); see config/formats.
FORMAT_MODULE_PATH = ["config.formats"]
# Dates and times are shown in this time zone (and stored in UTC).
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the source folders too, so that no collectstatic is needed to try it out.
WHITENOISE_USE_FINDERS = True

# --- The contactability rules (RULES.md, "Settings") --------------------------------------------
RETENTION_YEARS = env.int("RETENTION_YEARS", default=rule_defaults.RETENTION_YEARS)
DOI_CONFIRM_TTL = timedelta(
    days=env.int("DOI_CONFIRM_TTL_DAYS", default=rule_defaults.DOI_TTL_DAYS)
)
REPERMISSION_WINDOW = timedelta(
    days=env.int("REPERMISSION_WINDOW_DAYS", default=rule_defaults.REPERMISSION_WINDOW_DAYS)
)
CALLBACK_VALIDITY = timedelta(
    days=env.int("CALLBACK_VALIDITY_DAYS", default=rule_defaults.CALLBACK_VALIDITY_DAYS)
)
GENERIC_LOCAL_PARTS = env.list("GENERIC_LOCAL_PARTS", default=rule_defaults.GENERIC_LOCAL_PARTS)
# Projections computed under other rules or settings are recomputed by `migrate` when there are
# at most this many; beyond, `manage.py rebuild_projections --stale` does it.
PROJECTIONS_REBUILD_ON_MIGRATE_MAX = env.int("PROJECTIONS_REBUILD_ON_MIGRATE_MAX", default=20000)
# --- Links and sign-up ------------------------------------------------------------------------
PREFERENCE_LINK_TTL = timedelta(days=env.int("PREFERENCE_LINK_TTL_DAYS", default=60))
# Unsubscribe links (and the RFC 8058 one-click target of each email) work for this long after
# the email was sent, unless the person signs out of all links or changes address.
UNSUBSCRIBE_LINK_TTL = timedelta(days=env.int("UNSUBSCRIBE_LINK_TTL_DAYS", default=365))
# "Download my data" emails a one-time link that works for this long.
DATA_DOWNLOAD_LINK_TTL = timedelta(minutes=env.int("DATA_DOWNLOAD_LINK_TTL_MINUTES", default=60))
# How long a person's rendered preference page may be served again while nothing it shows has
# changed (preferences/pagecache.py); 0 draws it on every read.
# How many times a day a person may download their data from the preference page.
ACCESS_EXPORT_MAX_PER_DAY = env.int("ACCESS_EXPORT_MAX_PER_DAY", default=5)
PREFERENCE_PAGE_CACHE_SECONDS = env.int("PREFERENCE_PAGE_CACHE_SECONDS", default=600)
SIGNUP_MAX_EMAILS_PER_ADDRESS = env.int("SIGNUP_MAX_EMAILS_PER_ADDRESS", default=3)
SIGNUP_MAX_PER_IP_PER_HOUR = env.int("SIGNUP_MAX_PER_IP_PER_HOUR", default=20)
# Who may frame the embeddable sign-up form (?embed=1): a CSP frame-ancestors source list, e.g.
# "https://www.brand.fr https://shop.brand.fr". Nobody unless the operator names the sites.
EMBED_FRAME_ANCESTORS = (
    " ".join(env("EMBED_FRAME_ANCESTORS", default="'none'").replace(",", " ").split()) or "'none'"
)
if any(char in EMBED_FRAME_ANCESTORS for char in ';"<>'):
    raise ImproperlyConfigured(
        "EMBED_FRAME_ANCESTORS is a list of sites separated by spaces, e.g. "
        "'https://www.brand.fr https://shop.brand.fr'; it cannot contain ';', double quotes, "
        "'<' or '>'."
    )
# Reverse proxies in front of Assent that append to X-Forwarded-For (for rate limits, evidence).
NUM_PROXIES = env.int("NUM_PROXIES", default=0)

# Events dated further ahead than this are refused as a clock or data error.
LEDGER_MAX_CLOCK_SKEW = timedelta(minutes=env.int("LEDGER_MAX_CLOCK_SKEW_MINUTES", default=5))
# Ledger anchors (consents/anchors.py) are signed with this key, which the database never holds,
# so that whoever can write to the database cannot rewrite history and sign it again. Derived from
# SECRET_KEY unless set; production sets a dedicated key (``check --deploy`` warns otherwise),
# given only to the processes that anchor and verify (Celery workers, the operators' shell).
LEDGER_ANCHOR_KEY = env("LEDGER_ANCHOR_KEY", default="")
# Signs consent receipts (Ed25519, 32 bytes in base64) so that anyone can check them with the
# public key the API publishes; derived from the anchoring key unless set (api/receipts.py).
RECEIPT_SIGNING_KEY = env("RECEIPT_SIGNING_KEY", default="")
# An anchor covers what was recorded until this long before it is made, so that a transaction
# still open then cannot add an event recorded before the anchor's instant afterwards.
LEDGER_ANCHOR_LAG = timedelta(minutes=env.int("LEDGER_ANCHOR_LAG_MINUTES", default=10))

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# --- The integration API (api/) -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    # The representation is chosen by Accept only (no ?format=): one way to ask.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Assent integration API",
    "DESCRIPTION": (
        "Ask Assent whether a person may be contacted, tell it what happened elsewhere, export "
        "audiences, read receipts. Every error is RFC 9457 application/problem+json."
    ),
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "LanguageEnum": ["en", "fr"],
        "ChannelEnum": "consents.vocab.CHANNELS",
    },
    "DISABLE_ERRORS_AND_WARNINGS": False,
}
