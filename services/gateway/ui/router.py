"""The HTML pages of the gateway (server-rendered shells; each page's JS module fetches its data).

Every page except ``/login`` needs a signed-in caller: anonymous requests are
redirected to ``/login?next=<local path>``. Pages only *show* what the role
allows (no delete buttons for viewers, no admin nav); the APIs enforce it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from services.gateway.auth.permissions import allowed
from services.gateway.auth.security import safe_next
from services.gateway.routes import Permission
from services.gateway.ui.context import NO_STORE, forbidden, login_redirect, page_principal, render
from shared.settings import Settings

router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form; a signed-in caller goes straight to ``next`` (a local path only)."""
    target = safe_next(next)
    principal = await page_principal(request)
    if principal is not None:
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    return render(request, "login.html", page="login", principal=None, next_url=target)


def _page(template: str, page: str, permission: Permission = "read") -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        principal = await page_principal(request)
        if principal is None:
            return login_redirect(request)
        if not allowed(principal, permission):
            return forbidden(request, principal, needed=permission, page=page)
        settings: Settings = request.app.state.settings
        return render(
            request,
            template,
            page=page,
            principal=principal,
            jaeger_ui_url=(settings.jaeger_ui_url or "").rstrip("/"),
        )

    endpoint.__name__ = f"page_{page}"
    return endpoint


PAGES: tuple[tuple[str, str, str, Permission], ...] = (
    ("/", "dashboard.html", "dashboard", "read"),
    ("/search", "search.html", "search", "read"),
    ("/live", "live.html", "live", "read"),
    ("/upload", "upload.html", "upload", "upload"),
    ("/files", "files.html", "files", "read"),
    ("/admin", "admin.html", "admin", "admin"),
)
"""(path, template, page name, permission needed) of every page behind the login."""

for _path, _template, _name, _permission in PAGES:
    router.add_api_route(_path, _page(_template, _name, _permission), methods=["GET"], response_class=Response)
