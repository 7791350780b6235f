"""``/v1/imports``: a file handed to ``consents.imports``, imported asynchronously."""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from api import idempotency
from api import serializers as s
from api.auth import key_of
from api.views.base import ApiView, problem_responses
from consents import imports
from consents.models import ImportRun


class ImportsView(ApiView):
    scopes = {"POST": "imports:write"}
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="import_create",
        summary="Upload a file to import (asynchronous): answers 202 and the import's status",
        request={"multipart/form-data": s.ImportRequestSerializer},
        responses={202: s.ImportSerializer, **problem_responses(409, 415, 422)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Any:
        data = s.ImportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        upload = v["file"]
        h = hashlib.sha256()
        for chunk in upload.chunks():
            h.update(chunk)
        upload.seek(0)
        fingerprint = f"{h.hexdigest()}|{v['preset']}|{v.get('topic', '')}|{v['webhooks']}".encode()
        return idempotency.idempotent(request, lambda: self.create(request, v), body=fingerprint)

    def create(self, request: Request, v: dict[str, Any]) -> Response:
        path = imports.import_store(chunks=v["file"].chunks(), filename=v["file"].name)
        try:
            run = imports.import_queue(
                path=path, preset=v["preset"], topic=v.get("topic", ""),
                actor=key_of(request).actor, webhooks=v["webhooks"],
                filename=v["file"].name, locale=v["locale"],
            )  # fmt: skip
        except DjangoValidationError:
            path.unlink(missing_ok=True)
            raise
        run.refresh_from_db()
        response = Response(imports.import_as_dict(run), status=202)
        response["Location"] = reverse("api:import", args=[run.pk])
        return response


class ImportView(ApiView):
    scopes = {"GET": "imports:write"}

    @extend_schema(operation_id="import_status", summary="An import's status and report",
                   responses={200: s.ImportSerializer, **problem_responses(404)})  # fmt: skip
    def get(self, request: Request, pk: int) -> Response:
        return Response(imports.import_as_dict(get_object_or_404(ImportRun, pk=pk)))
