"""``/v1/webhooks/endpoints``: the webhook endpoints, through ``consents.webhooks_out``."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from api import idempotency
from api import serializers as s
from api.views.base import ApiView, problem_responses
from consents import webhooks_out
from consents.models import WebhookEndpoint


class EndpointsView(ApiView):
    scopes = {"*": "webhooks:manage"}

    @extend_schema(operation_id="webhook_endpoints", summary="Every webhook endpoint",
                   responses={200: s.EndpointsSerializer, **problem_responses()})  # fmt: skip
    def get(self, request: Request) -> Response:
        rows = [webhooks_out.endpoint_as_dict(e) for e in WebhookEndpoint.objects.order_by("pk")]
        return Response({"endpoints": rows})

    @extend_schema(
        operation_id="webhook_endpoint_create",
        summary="A new endpoint; its secret is in this answer only",
        request=s.EndpointInSerializer,
        responses={201: s.EndpointWithSecretSerializer, **problem_responses(409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Any:
        return idempotency.idempotent(request, lambda: self.create(request))

    def create(self, request: Request) -> Response:
        data = s.EndpointInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = webhooks_out.endpoint_create(**data.validated_data)
        return Response({**webhooks_out.endpoint_as_dict(endpoint), "secret": secret}, status=201)


class EndpointView(ApiView):
    scopes = {"*": "webhooks:manage"}

    @extend_schema(operation_id="webhook_endpoint", summary="One endpoint",
                   responses={200: s.EndpointSerializer, **problem_responses(404)})  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(webhooks_out.endpoint_as_dict(get_object_or_404(WebhookEndpoint, pk=pk)))

    @extend_schema(
        operation_id="webhook_endpoint_update",
        summary="Change an endpoint",
        request=s.EndpointPatchSerializer,
        responses={200: s.EndpointSerializer, **problem_responses(404, 422)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        data = s.EndpointPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        saved = webhooks_out.endpoint_update(endpoint=endpoint, **data.validated_data)
        return Response(webhooks_out.endpoint_as_dict(saved))


class EndpointRotateView(ApiView):
    scopes = {"POST": "webhooks:manage"}

    @extend_schema(
        operation_id="webhook_endpoint_rotate",
        summary="A new secret (the old one keeps signing during the overlap)",
        request=None,
        responses={200: s.EndpointWithSecretSerializer, **problem_responses(404, 409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request, pk: int) -> Any:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)

        def rotate() -> Response:
            secret = webhooks_out.endpoint_rotate_secret(endpoint=endpoint)
            endpoint.refresh_from_db()
            return Response({**webhooks_out.endpoint_as_dict(endpoint), "secret": secret})

        return idempotency.idempotent(request, rotate)


class EndpointReplayView(ApiView):
    scopes = {"POST": "webhooks:manage"}

    @extend_schema(
        operation_id="webhook_endpoint_replay",
        summary="Send again every message of a time range",
        request=s.ReplayRequestSerializer,
        responses={200: s.ReplaySerializer, **problem_responses(404, 409, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request, pk: int) -> Any:
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        data = s.ReplayRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return idempotency.idempotent(
            request,
            lambda: Response(
                {"queued": webhooks_out.deliveries_replay(endpoint=endpoint, **data.validated_data)}
            ),
        )
