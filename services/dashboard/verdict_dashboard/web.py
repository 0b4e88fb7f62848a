"""What every page shares: templates, the signed-in session, CSRF and role checks.

Pages raise the exceptions below; `app.py` turns them into a redirect to sign-in, a 403 or the
error page, so no route repeats that logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from verdict.v1 import experiment_pb2
from verdict_dashboard import csrf, formatting
from verdict_dashboard.clients import Api, Channels
from verdict_dashboard.config import DashboardSettings
from verdict_dashboard.sessions import Session, SessionStore

COOKIE = "verdict_session"
HERE = Path(__file__).resolve().parent

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["fmt"] = formatting
templates.env.globals["metric_type"] = lambda value: formatting.enum_label(
    experiment_pb2.MetricType.Name(value), "METRIC_TYPE_"
)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


@dataclass(frozen=True)
class Console:
    """The process's shared state, kept on `app.state.console`."""

    settings: DashboardSettings
    sessions: SessionStore
    channels: Channels


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page (API calls get 401)."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token (403)."""


class AdminOnly(Exception):
    """The signed-in key may not change things (403)."""


def console(request: Request) -> Console:
    """The process's shared state."""
    value: Console = request.app.state.console
    return value


def session_of(request: Request) -> Session | None:
    """The request's live session, if any."""
    return console(request).sessions.get(request.cookies.get(COOKIE))


def require_session(request: Request) -> Session:
    """The live session; SignInRequired without one."""
    session = session_of(request)
    if session is None:
        raise SignInRequired()
    request.state.session = session
    return session


def api(request: Request, session: Session) -> Api:
    """Calls on behalf of the session's key."""
    return console(request).channels.api(session.api_key)


async def state_change(request: Request, admin: bool = True) -> tuple[Session, FormData]:
    """The session and form of a state-changing request: CSRF token checked, then the role
    (`admin`) when the change needs it."""
    session = require_session(request)
    form = await request.form()
    if not csrf.token_matches(session.csrf_token, csrf.submitted_token(request.headers, form)):
        raise CsrfRefused()
    if admin and not session.admin:
        raise AdminOnly()
    return session, form


def is_htmx(request: Request) -> bool:
    """True for a request htmx made (it wants a fragment, not a page)."""
    return request.headers.get("hx-request") == "true"


def sign_in_url(request: Request) -> str:
    """The sign-in page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/signin?next={quote(target, safe='/')}"


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """A page or fragment rendered with the session (if any) and its CSRF token."""
    session = getattr(request.state, "session", None) or session_of(request)
    values = {"session": session, "csrf_token": session.csrf_token if session else ""}
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status)


def form_values(form: FormData) -> dict[str, str]:
    """The form's fields (last value of each), without the CSRF token."""
    return {k: str(v) for k, v in form.items() if k != csrf.FORM_FIELD}
