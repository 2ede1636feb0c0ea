"""The page at `/` and Swagger UI at `/docs`, both from files this package carries.

Nothing is loaded from another site, so both work offline: the page is plain HTML/JS/SVG
(service/static), Swagger UI's assets come from the `swagger-ui-bundle-v2` package.

The page and its assets are public (they hold no data); every API call the page makes
sends the key the page asks for when `API_KEY` is set (see README, "The web page").
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
SWAGGER_DIR = Path(str(swagger_ui_bundle.swagger_ui_path))

# The page may only talk to this origin; thumbnails are data: (summaries) or drawn from the
# chosen file's blob: URL. CSSOM writes (el.style.x = ...) are not inline styles for CSP.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache",
                 "X-Content-Type-Options": "nosniff"},
    )


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=root + (request.app.openapi_url or "/openapi.json"),
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/favicon.svg",
        # validatorUrl null: Swagger UI would otherwise send the spec to an online validator.
        swagger_ui_parameters={"validatorUrl": None},
    )


def install(app: FastAPI) -> None:
    """Serve the page, its assets and /docs on `app` (created with docs_url=None)."""
    # The more specific mount first: Starlette matches mounts in order.
    app.mount("/static/swagger-ui", StaticFiles(directory=SWAGGER_DIR), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
