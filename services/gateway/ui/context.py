"""What every page template gets: the caller, the navigation, the CSRF token, settings for the page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse, Response

from services.gateway.auth.permissions import allowed
from services.gateway.auth.service import Authenticated, authenticate_request
from services.gateway.routes import Permission
from shared.errors import ApiError
from shared.internal import Principal
from shared.settings import Settings

TEMPLATES_DIR: Final = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
# Pages carry the session's CSRF token: never cache them anywhere.
NO_STORE: Final = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the top navigation."""

    key: str
    label: str
    href: str


@dataclass(frozen=True, slots=True)
class PageUser:
    """The signed-in caller as the templates see it (what the role allows, for showing controls)."""

    name: str
    kind: str
    role: str | None
    can_ingest: bool
    can_upload: bool
    can_save: bool
    is_admin: bool

    @classmethod
    def of(cls, principal: Principal) -> PageUser:
        """Build from a principal; the APIs still enforce every permission themselves."""
        return cls(
            name=principal.name,
            kind=principal.kind,
            role=principal.role or ("key" if principal.kind == "key" else None),
            can_ingest=allowed(principal, "ingest"),
            can_upload=allowed(principal, "upload"),
            can_save=allowed(principal, "personal"),
            is_admin=allowed(principal, "admin"),
        )


def nav_items(user: PageUser) -> list[NavItem]:
    """The navigation the caller may use (Upload for uploaders, Admin for admins)."""
    items = [
        NavItem("dashboard", "Dashboard", "/"),
        NavItem("search", "Search", "/search"),
        NavItem("live", "Live", "/live"),
    ]
    if user.can_upload:
        items.append(NavItem("upload", "Upload", "/upload"))
    items.append(NavItem("files", "Files", "/files"))
    if user.is_admin:
        items.append(NavItem("admin", "Admin", "/admin"))
    items.append(NavItem("docs", "API docs", "/docs"))
    return items


async def page_principal(request: Request) -> Principal | None:
    """The caller of a page request, or None when anonymous (or refused by the CSRF/Origin checks)."""
    try:
        return await authenticate_request(request)
    except ApiError:
        return None


def csrf_token(request: Request) -> str:
    """The session's CSRF token ("" for API-key callers, which need none)."""
    auth: Authenticated | None = getattr(request.state, "auth", None)
    if auth is None or auth.session is None:
        return ""
    return auth.session.csrf_token


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the login page, remembering the local path (and query) to come back to."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=NO_STORE)


def render(
    request: Request,
    template: str,
    *,
    page: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render a page with the shared layout context."""
    settings: Settings = request.app.state.settings
    user = PageUser.of(principal) if principal is not None else None
    public = urlsplit(settings.public_url)
    base: dict[str, Any] = {
        "page": page,
        "user": user,
        "nav": nav_items(user) if user is not None else [],
        "csrf_token": csrf_token(request) if principal is not None else "",
        "public_url": settings.public_url.rstrip("/"),
        "public_host": public.hostname or "127.0.0.1",
        "public_port": public.port or (443 if public.scheme == "https" else 80),
        "public_tls": public.scheme == "https",
    }
    base.update(context)
    return templates.TemplateResponse(request, template, base, status_code=status_code, headers=NO_STORE)


def forbidden(request: Request, principal: Principal, *, needed: Permission, page: str) -> Response:
    """The 403 page: the caller is signed in but their role does not allow this page."""
    return render(
        request,
        "error.html",
        page=page,
        principal=principal,
        status_code=403,
        title="Not allowed",
        message=f"Your role does not allow this page (it needs the '{needed}' permission).",
    )
