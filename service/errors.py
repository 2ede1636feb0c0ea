"""RFC 9457 problem+json for every failure, the framework's own included."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service")

PROBLEM_TYPE = "application/problem+json"


class ApiError(Exception):
    """A failure with a status and a detail that tells the client what to do."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem(status: int, detail: str, headers: dict[str, str] | None = None, oip: bool = False) -> JSONResponse:
    """oip: also the Open Inference Protocol's `error` member (KServe/Triton clients read it)."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if oip:
        body["error"] = detail
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts) + " (see /docs for the parameters)"


_DEFAULT_DETAILS = {
    404: "no such endpoint; see /docs for the API",
    405: "this method is not allowed on this endpoint; see /docs",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.detail, exc.headers, oip=request.url.path.startswith("/v2/"))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if detail == HTTPStatus(exc.status_code).phrase:
            detail = _DEFAULT_DETAILS.get(exc.status_code, detail)
        return problem(exc.status_code, detail, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error: %s", exc)
        return problem(500, "internal error; the service logged it, retry later")
