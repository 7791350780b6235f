"""Each reason of ``rules.decide`` in plain words, in French and English (RULES.md's terms)."""

from __future__ import annotations

from consents.vocab import Reason

TEXTS: dict[str, dict[str, str]] = {
    Reason.NO_ADDRESS: {
        "en": "We have no address for this channel.",
        "fr": "Nous n’avons pas d’adresse pour ce canal.",
    },
    Reason.RETENTION_EXPIRED: {
        "en": "The period we may keep this person's data for marketing is over.",
        "fr": "La durée de conservation des données de cette personne pour la prospection est "
        "écoulée.",
    },
    Reason.UNDELIVERABLE: {
        "en": "Emails to this address cannot be delivered.",
        "fr": "Les emails à cette adresse ne peuvent pas être distribués.",
    },
    Reason.REPERMISSION: {
        "en": "One neutral request to renew consent is due before the data expires.",
        "fr": "Une demande neutre de renouvellement du consentement est due avant l’expiration "
        "des données.",
    },
    Reason.REPERMISSION_NOT_DUE: {
        "en": "A request to renew consent is not due (already asked, or not yet time).",
        "fr": "Une demande de renouvellement n’est pas due (déjà faite, ou pas encore le moment).",
    },
    Reason.SERVICE: {
        "en": "A service message without promotion needs no consent.",
        "fr": "Un message de service sans promotion ne demande pas de consentement.",
    },
    Reason.OPTED_OUT: {
        "en": "The person opted out of this.",
        "fr": "La personne s’y est opposée.",
    },
    Reason.PAUSED: {
        "en": "The person paused marketing on this channel for now.",
        "fr": "La personne a mis en pause la prospection sur ce canal.",
    },
    Reason.OPT_IN: {
        "en": "The person gave valid consent to this topic on this channel.",
        "fr": "La personne a donné un consentement valable pour ce sujet sur ce canal.",
    },
    Reason.GENERIC_ADDRESS: {
        "en": "A generic company address (such as contact@) may receive professional offers.",
        "fr": "Une adresse générique d’entreprise (comme contact@) peut recevoir des offres "
        "professionnelles.",
    },
    Reason.LEGITIMATE_INTEREST: {
        "en": "Post is allowed on legitimate interest: the person was informed and did not object.",
        "fr": "Le courrier postal est permis sur intérêt légitime : la personne a été informée et "
        "ne s’y est pas opposée.",
    },
    Reason.B2B_PROFESSIONAL: {
        "en": "A professional may be contacted about offers related to their profession.",
        "fr": "Un professionnel peut être sollicité pour des offres en rapport avec sa profession.",
    },
    Reason.CONTRACT_IN_PROGRESS: {
        "en": "A call about a contract in progress, for a related product, is allowed.",
        "fr": "Un appel au sujet d’un contrat en cours, pour un produit lié, est permis.",
    },
    Reason.CALLBACK_REQUESTED: {
        "en": "The person asked to be called back, recently.",
        "fr": "La personne a demandé à être rappelée, récemment.",
    },
    Reason.SOFT_OPT_IN: {
        "en": "A customer may receive offers for products like those they bought, unless they "
        "objected.",
        "fr": "Un client peut recevoir des offres pour des produits analogues à ceux achetés, "
        "sauf opposition.",
    },
    Reason.ALREADY_BOUGHT_PRODUCT: {
        "en": "The person already bought this product.",
        "fr": "La personne a déjà acheté ce produit.",
    },
    Reason.CONSENT_PENDING: {
        "en": "The person signed up but has not confirmed by email yet.",
        "fr": "La personne s’est inscrite mais n’a pas encore confirmé par email.",
    },
    Reason.INVALID_CONSENT: {
        "en": "The recorded consent is not valid (pre-ticked, bundled or without proof).",
        "fr": "Le consentement enregistré n’est pas valable (pré-coché, groupé ou sans preuve).",
    },
    Reason.NOT_INFORMED: {
        "en": "The person was not informed when their data was collected.",
        "fr": "La personne n’a pas été informée lors de la collecte de ses données.",
    },
    Reason.NOT_PROFESSIONAL_RELEVANT: {
        "en": "The offer is not related to this professional's profession.",
        "fr": "L’offre est sans rapport avec la profession de ce professionnel.",
    },
    Reason.NOT_ANALOGOUS: {
        "en": "The customer bought nothing analogous to what this message offers.",
        "fr": "Le client n’a rien acheté d’analogue à ce que propose ce message.",
    },
    Reason.NO_CONSENT: {
        "en": "There is no consent and no other basis to send this.",
        "fr": "Il n’y a ni consentement ni autre fondement pour envoyer ce message.",
    },
    Reason.TOPIC_RETIRED: {
        "en": "This topic is retired: nothing is sent for it.",
        "fr": "Ce sujet est retiré : plus rien n’est envoyé à son titre.",
    },
}


def explain(reason: str, language: str) -> str:
    texts = TEXTS.get(reason, {})
    return texts.get(language) or texts.get("en") or reason
