from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from api import problems
from api.views import audiences, catalogue, contacts, decisions, dsr, events, imports, webhooks

app_name = "api"

urlpatterns = [
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("v1/problems/<slug:slug>", catalogue.ProblemTypeView.as_view(), name="problem"),
    path("v1/decisions", decisions.DecisionsView.as_view(), name="decisions"),
    path("v1/events", events.EventsView.as_view(), name="events"),
    path("v1/contacts/<str:public_id>", contacts.ContactView.as_view(), name="contact"),
    path(
        "v1/contacts/<str:public_id>/events",
        contacts.ContactEventsView.as_view(),
        name="contact_events",
    ),  # fmt: skip
    path("v1/contacts/<str:public_id>/receipts", contacts.ReceiptsView.as_view(), name="receipts"),
    path("v1/contacts/<str:public_id>/links", contacts.LinksView.as_view(), name="links"),
    path("v1/contacts/<str:public_id>/erasure", dsr.ErasureView.as_view(), name="erasure"),
    path(
        "v1/contacts/<str:public_id>/access-export",
        dsr.AccessExportView.as_view(),
        name="access_export",
    ),  # fmt: skip
    path("v1/receipts/key", catalogue.ReceiptKeyView.as_view(), name="receipt_key"),
    path("v1/topics", catalogue.TopicsView.as_view(), name="topics"),
    path("v1/notices", catalogue.NoticesView.as_view(), name="notices"),
    path("v1/audiences", audiences.AudienceView.as_view(), name="audiences"),
    path("v1/imports", imports.ImportsView.as_view(), name="imports"),
    path("v1/imports/<int:pk>", imports.ImportView.as_view(), name="import"),
    path("v1/webhooks/endpoints", webhooks.EndpointsView.as_view(), name="endpoints"),
    path("v1/webhooks/endpoints/<int:pk>", webhooks.EndpointView.as_view(), name="endpoint"),
    path(
        "v1/webhooks/endpoints/<int:pk>/rotate-secret",
        webhooks.EndpointRotateView.as_view(),
        name="endpoint_rotate",
    ),  # fmt: skip
    path(
        "v1/webhooks/endpoints/<int:pk>/replay",
        webhooks.EndpointReplayView.as_view(),
        name="endpoint_replay",
    ),  # fmt: skip
    # Anything else under /api/: a problem, not the site's HTML 404 page.
    re_path(r"^.*$", problems.not_found),
]
