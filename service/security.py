"""Optional API key: `Authorization: Bearer <key>`, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from service.errors import ApiError


async def require_api_key(request: Request) -> None:
    secret = request.app.state.service.settings.api_key
    if secret is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = secret.get_secret_value().encode()
    # compare_digest on bytes: a mismatch takes as long wherever it is.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise ApiError(
            401,
            "missing or wrong API key; send the header 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": 'Bearer realm="motion"'},
        )
