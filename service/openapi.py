"""The OpenAPI document says every status the service can answer, and how to send the key.

FastAPI documents what a route declares; the statuses that come from elsewhere (the API
key, the protocol's header limits, timeouts, readiness) are added here, so that generated
clients and fuzzers (schemathesis) see the real contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.settings import Settings

PUBLIC = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"}  # never need the key
UPLOADS = {"/classify", "/summarize"}
SCHEME = "bearerKey"

_WHY = {
    400: "the upload is not a decodable video, or the request is malformed",
    401: "the API key is missing or wrong",
    404: "unknown route or model name",
    408: "the request headers or the upload stalled beyond the configured timeout",
    413: "the upload or the video is beyond a limit (bytes, pixels, duration, streams, decode budget)",
    415: "the request is not multipart/form-data",
    422: "a parameter or the file field is missing or invalid",
    429: "the inference queue is full (see Retry-After)",
    431: "the request headers are too large or too many",
    503: "not ready, or draining (see Retry-After)",
    504: "the request passed its deadline",
}


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": _WHY[status],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def install(app: FastAPI, settings: Settings) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        keyed = settings.api_key is not None
        if keyed:
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
                "type": "http", "scheme": "bearer", "description": "the service's API_KEY",
            }
        for path, item in schema.get("paths", {}).items():
            for op in item.values():
                statuses = [431, 408]
                if path not in PUBLIC:
                    statuses += [401] if keyed else []
                    statuses += [404, 503]
                if path in UPLOADS:
                    statuses += [400, 413, 415, 422, 429, 504]
                responses = op.setdefault("responses", {})
                for status in statuses:
                    entry = responses.setdefault(str(status), _problem(status))
                    # A route's own declaration may lack the schema (e.g. "not ready"): fill it in.
                    entry.setdefault("content", {}).setdefault("application/problem+json", {}).setdefault(
                        "schema", {"$ref": "#/components/schemas/Problem"}
                    )
                if keyed and path not in PUBLIC:
                    op["security"] = [{SCHEME: []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
