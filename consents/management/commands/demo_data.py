"""Demo data for the embedded default (``make run``): safe to run on every start.

Everything is created only when it is missing, and consent facts go through ``consents.services``
like any other writer, so the demo ledger is a real, verifiable one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from consents import clock, services
from consents.models import Category, Contact, Notice, Store, Topic
from consents.vocab import Doi, Method

DEFAULT_PASSWORD = "assent-demo"
COMPLIANCE_GROUP = "Compliance officer"  # created, with its rights, by a migration

TOPICS: list[dict[str, Any]] = [
    {
        "slug": "promotions",
        "purpose": "promotion",
        "channels": ["email", "sms", "push"],
        "frequencies": ["weekly", "monthly"],
        "name_fr": "Bons plans et promotions",
        "name_en": "Deals and promotions",
        "description_fr": "Nos soldes, ventes privées et codes de réduction.",
        "description_en": "Our sales, private sales and discount codes.",
    },
    {
        "slug": "new-products",
        "purpose": "promotion",
        "channels": ["email", "push"],
        "frequencies": ["monthly"],
        "name_fr": "Nouveautés",
        "name_en": "New products",
        "description_fr": "Les nouveaux produits dès leur arrivée en magasin.",
        "description_en": "New products as soon as they reach our stores.",
    },
    {
        "slug": "newsletter",
        "purpose": "newsletter",
        "channels": ["email"],
        "frequencies": ["weekly", "monthly"],
        "name_fr": "La lettre d’information",
        "name_en": "The newsletter",
        "description_fr": "Conseils, idées et coulisses de la marque.",
        "description_en": "Tips, ideas and behind the scenes of the brand.",
    },
    {
        "slug": "loyalty",
        "purpose": "loyalty_enrolment",
        "channels": ["email", "sms", "postal"],
        "frequencies": ["monthly"],
        "name_fr": "Programme de fidélité",
        "name_en": "Loyalty programme",
        "description_fr": "Votre solde de points, vos avantages et vos invitations.",
        "description_en": "Your points balance, your benefits and your invitations.",
    },
    {
        "slug": "partners",
        "purpose": "partner_offer",
        "channels": ["email"],
        "frequencies": ["monthly"],
        "name_fr": "Offres de nos partenaires",
        "name_en": "Offers from our partners",
        "description_fr": "Des offres choisies de marques partenaires, envoyées par nous.",
        "description_en": "Selected offers from partner brands, sent by us.",
    },
]

NOTICES = {
    "fr": (
        "J’accepte de recevoir « {name} » {channels}. Je peux retirer mon consentement à tout "
        "moment depuis le lien présent dans chaque message ou depuis ma page de préférences."
    ),
    "en": (
        "I agree to receive “{name}” {channels}. I can withdraw my consent at any time from "
        "the link in every message or from my preferences page."
    ),
}

CHANNEL_WORDS = {
    "fr": {"email": "par e-mail", "sms": "par SMS", "phone": "par téléphone"},
    "en": {"email": "by email", "sms": "by text message", "phone": "by phone"},
}
# The channels the sign-up form and the store tablet offer (``preferences.services``): a notice
# shown under their boxes names only those, never one the form does not offer.
FORM_CHANNELS = ("email", "sms", "phone")

CATALOG = {
    "books": "culture",
    "music": "culture",
    "dvd": "culture",
    "sofa": "home",
    "lamp": "home",
    "rug": "home",
    "drill": "diy",
    "paint": "diy",
    "shoes": "fashion",
    "coat": "fashion",
}
# Each category's name, in French then in English.
CATALOG_NAMES = {
    "books": ("Livres", "Books"),
    "music": ("Musique", "Music"),
    "dvd": ("DVD", "DVDs"),
    "sofa": ("Canapés", "Sofas"),
    "lamp": ("Luminaires", "Lamps"),
    "rug": ("Tapis", "Rugs"),
    "drill": ("Perceuses", "Drills"),
    "paint": ("Peinture", "Paint"),
    "shoes": ("Chaussures", "Shoes"),
    "coat": ("Manteaux", "Coats"),
}

STORE = {"code": "paris-01", "name": "Paris Rivoli", "address": "75 rue de Rivoli, 75001 Paris"}


@dataclass
class Login:
    username: str
    role: str
    # The demo password still opens this account (so printing it is useful).
    password_works: bool


def notice_text(topic: Topic, language: str) -> str:
    words = CHANNEL_WORDS[language]
    joiner = " ou " if language == "fr" else " or "
    name = topic.name_fr if language == "fr" else topic.name_en
    channels = joiner.join(words[c] for c in topic.channels if c in FORM_CHANNELS)
    return NOTICES[language].format(name=name.replace("'", "’"), channels=channels)


def ensure_topics() -> int:
    created = 0
    for spec in TOPICS:
        if not Topic.objects.filter(slug=spec["slug"]).exists():
            services.topic_create(**spec)
            created += 1
    for topic in Topic.objects.filter(slug__in=[t["slug"] for t in TOPICS]):
        for language in ("fr", "en"):
            text = notice_text(topic, language)
            current = (
                Notice.objects.filter(topic=topic, language=language, published_at__isnull=False)
                .order_by("-version")
                .first()
            )
            # A new version when the wording changed (an older demo named other channels).
            if current is None or current.text != text:
                services.notice_publish(topic=topic, language=language, text=text)
    return created


def ensure_catalog() -> Store:
    existing = dict(Category.objects.values_list("slug", "name_en"))
    for slug, family in CATALOG.items():
        if not existing.get(slug):
            name, name_en = CATALOG_NAMES[slug]
            services.category_set(slug=slug, family=family, name=name, name_en=name_en)
    store, _ = Store.objects.get_or_create(
        code=STORE["code"], defaults={"name": STORE["name"], "address": STORE["address"]}
    )
    return store


def compliance_group() -> Group:
    """The migration's group (consents.0007): its rights are the migration's, not the demo's."""
    return Group.objects.get(name=COMPLIANCE_GROUP)


def ensure_store_staff(user: Any, store: Store) -> None:
    """The demo's store account: staff of paris-01 and its manager, so it can enrol a tablet.

    The store capture lives in the preferences app; it is looked up, not imported, because
    consents never depends on preferences.
    """
    from django.apps import apps

    for name in ("Staff", "Store manager"):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            user.groups.add(group)
    if apps.is_installed("preferences"):
        membership = apps.get_model("preferences", "StoreMembership")
        membership.objects.get_or_create(user=user, store=store)


def ensure_users(password: str, store: Store) -> list[Login]:
    User = get_user_model()
    logins = []
    specs = [
        ("admin", "superuser: everything, topics and notices", {"is_superuser": True}),
        ("compliance", "compliance officer: reads, exports, erases; no ledger edits", {}),
        ("store", "store staff and manager of paris-01: /store/ only", {}),
    ]
    for username, role, extra in specs:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(
                username=username,
                email=f"{username}@assent.localhost",
                password=password,
                is_staff=username != "store",
                **extra,
            )
        if username == "compliance":
            user.groups.add(compliance_group())  # a no-op when already a member
        if username == "store":
            ensure_store_staff(user, store)
        logins.append(Login(username, role, user.check_password(password)))
    return logins


def _notice(slug: str, language: str) -> Notice | None:
    return (
        Notice.objects.filter(topic__slug=slug, language=language, published_at__isnull=False)
        .order_by("-version")
        .first()
    )


def _web(slug: str, language: str, **kwargs: Any) -> services.Proof:
    return services.Proof(
        method=kwargs.pop("method", Method.WEB_FORM),
        actor="person",
        collection_point=kwargs.pop("collection_point", f"{settings.SITE_URL}/subscribe/"),
        notice=_notice(slug, language),
        ip_address="203.0.113.10",
        user_agent="Mozilla/5.0 (demo)",
        **kwargs,
    )


def ensure_contacts(store: Store) -> int:
    """Four people, each in a state a compliance officer should recognise."""
    now = clock.now()
    created = 0

    def missing(email: str) -> bool:
        return services.contact_find(email=email) is None

    # Opted in on the web, then a second topic from the preference center.
    if missing("camille.martin@example.fr"):
        with transaction.atomic():
            contact = services.contact_create(
                email="camille.martin@example.fr",
                first_name="Camille",
                locale="fr",
                collected_at=now - timedelta(days=40),
                informed_at_collection=True,
            )
            services.consent_grant(
                contact=contact,
                topic="newsletter",
                channel="email",
                proof=_web("newsletter", "fr"),
                frequency="monthly",
                occurred_at=now - timedelta(days=40),
            )
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=_web(
                    "promotions",
                    "fr",
                    method=Method.PREFERENCE_CENTER,
                    collection_point=f"{settings.SITE_URL}/preferences/",
                ),
                frequency="weekly",
                occurred_at=now - timedelta(days=12),
            )
        created += 1

    # Signed up yesterday, has not clicked the confirmation link yet.
    if missing("lucas.bernard@example.com"):
        with transaction.atomic():
            contact = services.contact_create(
                email="lucas.bernard@example.com",
                first_name="Lucas",
                locale="en",
                collected_at=now - timedelta(days=1),
                informed_at_collection=True,
            )
            services.consent_grant(
                contact=contact,
                topic="newsletter",
                channel="email",
                proof=_web("newsletter", "en"),
                doi=Doi.PENDING,
                occurred_at=now - timedelta(days=1),
            )
        created += 1

    # Opted in, then left everything from the link in an email.
    if missing("emma.petit@example.fr"):
        with transaction.atomic():
            contact = services.contact_create(
                email="emma.petit@example.fr",
                first_name="Emma",
                locale="fr",
                collected_at=now - timedelta(days=200),
                informed_at_collection=True,
            )
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="email",
                proof=_web("promotions", "fr"),
                occurred_at=now - timedelta(days=200),
            )
            services.consent_withdraw(
                contact=contact,
                topic="*",
                channel="*",
                proof=services.Proof(
                    method=Method.UNSUBSCRIBE_LINK,
                    actor="person",
                    collection_point=f"{settings.SITE_URL}/unsubscribe/",
                    ip_address="198.51.100.23",
                    user_agent="Mozilla/5.0 (demo)",
                ),
                occurred_at=now - timedelta(days=3),
            )
        created += 1

    # A customer of the Paris store: opted in to SMS on the tablet, then bought a sofa.
    if missing("hugo.durand@example.fr"):
        with transaction.atomic():
            contact = services.contact_create(
                email="hugo.durand@example.fr",
                phone="06 12 34 56 78",
                first_name="Hugo",
                locale="fr",
                collected_at=now - timedelta(days=20),
                informed_at_collection=True,
            )
            in_store = services.Proof(
                method=Method.STORE_TABLET,
                actor="staff:store",
                collection_point=f"store:{store.code}",
                store=store,
                notice=_notice("promotions", "fr"),
            )
            services.consent_grant(
                contact=contact,
                topic="promotions",
                channel="sms",
                proof=in_store,
                frequency="monthly",
                occurred_at=now - timedelta(days=20),
            )
            services.purchase_record(
                contact=contact,
                category="sofa",
                product="Canapé Oslo 3 places",
                # Purchases arrive from the tills through the API, with the receipt number.
                proof=services.Proof(
                    method=Method.API,
                    actor="api:till",
                    collection_point=f"store:{store.code}",
                    store=store,
                    reference="receipt PAR01-000412",
                ),
                occurred_at=now - timedelta(days=20),
            )
        created += 1
    return created


class Command(BaseCommand):
    help = (
        "Create demo topics (FR/EN) with published notices, a small catalog, the store paris-01, "
        "the users admin (superuser), "
        "compliance (read-only admin) and store (no admin), and four demo contacts. "
        "Only what is missing is created: running it again changes nothing. "
        "Passwords come from the DEMO_PASSWORD environment variable "
        f"(default {DEFAULT_PASSWORD!r}) and apply to users created by this run; existing users "
        "keep theirs. "
        "Refused when DEBUG is off, unless --allow-production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG=False (it creates a superuser with a known password).",
        )

    def _enrolment_links(self, logins: list[Login]) -> None:
        """With the second factor on, the password alone enrols nothing: each admin account
        without a device gets its one-time enrolment link (a new one per run)."""
        from django_otp import user_has_device

        from consents.admin import twofactor

        self.stdout.write(
            "Admin second factor: on. Each admin account sets it up once: open its link, log in "
            "with its password, scan the QR code with an authenticator app."
        )
        User = get_user_model()
        for login in logins:
            user = User.objects.get(username=login.username)
            if not user.is_staff:
                continue
            if user_has_device(user, confirmed=True):
                self.stdout.write(f"  {login.username:<11} (already set up)")
                continue
            token = twofactor.enrolment_link_create(user=user, created_by=None)
            link = f"{settings.SITE_URL}{twofactor.enrolment_link_path(token)}"
            self.stdout.write(f"  {login.username:<11} {link}")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["allow_production"]:
            raise CommandError(
                "DEBUG is off: demo_data would create a superuser with a known password. "
                "Pass --allow-production if this really is a demo instance."
            )
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        with transaction.atomic():
            topics = ensure_topics()
            store = ensure_catalog()
            logins = ensure_users(password, store)
            contacts = ensure_contacts(store)

        site = settings.SITE_URL
        self.stdout.write(
            f"Demo data: {topics} topic(s) and {contacts} contact(s) created "
            f"({Topic.objects.count()} topics, {Contact.objects.count()} contacts in all)."
        )
        self.stdout.write("Logins:")
        for login in logins:
            secret = password if login.password_works else "(existing user, own password)"
            self.stdout.write(f"  {login.username:<11} {secret:<38} {login.role}")
        from consents.admin.site import second_factor_required

        if second_factor_required():
            self._enrolment_links(logins)
        else:
            self.stdout.write("Admin second factor: off (DEBUG on and ADMIN_REQUIRE_2FA=False).")
        self.stdout.write("Open:")
        self.stdout.write(f"  customer pages  {site}/")
        self.stdout.write(f"  store tablet    {site}/store/")
        self.stdout.write(f"  admin           {site}/admin/")
        self.stdout.write(f"  mail sent       {site}/dev/mail/")
