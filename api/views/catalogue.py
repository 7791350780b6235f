"""What anyone integrating needs to know: the topics, the published notices, the key that verifies
receipts, the problem types."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import receipts
from api import serializers as s
from api.problems import PROBLEMS, Problem
from api.views.base import ApiView, problem_responses
from consents.models import Notice, Topic


class TopicsView(ApiView):
    @extend_schema(operation_id="topics", summary="The topics people can consent to",
                   responses={200: s.TopicsSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        topics = [
            {
                "slug": t.slug,
                "name": {"en": t.name_en, "fr": t.name_fr},
                "description": {"en": t.description_en, "fr": t.description_fr},
                "purpose": t.purpose,
                "channels": list(t.channels),
                "frequencies": list(t.frequencies),
                "active": t.active,
            }
            for t in Topic.objects.order_by("display_order", "slug")
        ]
        return Response(s.TopicsSerializer({"topics": topics}).data)


class NoticesView(ApiView):
    @extend_schema(operation_id="notices", summary="The published notices, every version",
                   responses={200: s.NoticesSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        notices = [
            {
                "id": n.pk,
                "topic": n.topic.slug if n.topic_id else None,
                "language": n.language,
                "version": n.version,
                "text": n.text,
                "sha256": n.sha256,
                "published_at": n.published_at,
            }
            for n in Notice.objects.filter(published_at__isnull=False)
            .select_related("topic")
            .order_by("topic__slug", "language", "version")
        ]
        return Response(s.NoticesSerializer({"notices": notices}).data)


class ReceiptKeyView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        operation_id="receipt_key",
        summary="The public key that verifies receipts (a JWK), for anyone",
        auth=[],
        responses={200: s.JwkSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(receipts.jwk())


class ProblemTypeView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    renderer_classes = [JSONRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Request, slug: str) -> Response:
        if slug not in PROBLEMS:
            raise Problem("not-found", "No such problem type.")
        status, title, text = PROBLEMS[slug]
        return Response({"type": f"/api/v1/problems/{slug}", "status": status, "title": title,
                         "description": text})  # fmt: skip
