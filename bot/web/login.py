"""Who may use the review workspace: login, logout, sessions, CSRF and the security headers of its pages.

Sessions are aiohttp-session encrypted cookies (Fernet: tampering or expiry makes them void) holding the
account name, its password epoch, the login time and the session's CSRF token; the key lives in the state
folder. The cookie is HttpOnly, SameSite=Strict, Secure when the request came over HTTPS, and lasts
`review.session_hours`. The bearer admin token is accepted too (scripts and the JSON API); it acts as an admin.

Without an identity, pages under /review/ redirect to the login page and /api/review/ answers 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session, new_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from bot.review.accounts import DUMMY_HASH, AccountStore, check_password
from bot.serving.keys import admin_token, session_key
from bot.settings import Settings
from bot.web.runtime import RUNTIME
from bot.web.security import Handler, client_address

log = logging.getLogger("supportbot.review")
PAGES, API = "/review", "/api/review/"
PUBLIC = ("/review/login", "/review/static/")
COOKIE = "supportbot_review"
CSRF_HEADER, CSRF_FIELD = "X-CSRF-Token", "_csrf"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    csrf: str = ""  # empty for the bearer token: not a browser credential, so no cross-site forgery
    via_token: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ReviewCookieStorage(EncryptedCookieStorage):
    """Encrypted cookie; `Secure` is decided per response: set when the request came over HTTPS."""

    async def save_session(self, request: web.Request, response: web.StreamResponse, session) -> None:
        self._cookie_params["secure"] = request.secure  # no await before the cookie is written
        await super().save_session(request, response, session)


def setup(app: web.Application, settings: Settings) -> None:
    """Session and guard middlewares and the login routes."""
    r = settings.review
    storage = ReviewCookieStorage(Fernet(session_key(settings.state_path)), cookie_name=COOKIE, path="/",
                                  max_age=int(r.session_hours * 3600), httponly=True, samesite="Strict")
    app.middlewares.append(session_middleware(storage))
    app.middlewares.append(guard(settings))
    app.router.add_get("/review/login", login_page)
    app.router.add_post("/review/login", login)
    app.router.add_post("/review/logout", logout)


def accounts(request: web.Request) -> AccountStore:
    """The accounts store, opened at start on the database thread: call its methods through `Runtime.db`."""
    return request.app[RUNTIME].accounts


def is_review_path(path: str) -> bool:
    return path == PAGES or path.startswith(PAGES + "/") or path.startswith(API)


def guard(settings: Settings):
    token = admin_token(settings).encode()
    max_age = settings.review.session_hours * 3600

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_review_path(request.path):
            return await handler(request)
        api = request.path.startswith(API)
        try:
            if not request.path.startswith(PUBLIC):
                who = await _identity(request, token, max_age)
                if who is None:
                    if api:
                        raise _json(401, "log in to the review workspace, or send 'Authorization: Bearer <admin token>'",
                                    {"WWW-Authenticate": "Bearer"})
                    target = request.path_qs if request.method == "GET" else PAGES
                    raise web.HTTPSeeOther(f"/review/login?next={quote(target, safe='')}")
                if request.method not in SAFE_METHODS and not who.via_token:
                    await _check_csrf(request, who)
                request["reviewer"] = who
            response = await handler(request)
        except web.HTTPException as e:
            if e.status >= 400 and e.content_type != "application/json":
                e = _json(e.status, e.text or e.reason) if api else _page_error(e.status, e.text or e.reason)
            response = e
        response.headers.update(HEADERS)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    return middleware


async def _identity(request: web.Request, token: bytes, max_age: float) -> Identity | None:
    auth = request.headers.get("Authorization", "")
    if auth:
        scheme, _, given = auth.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
            return Identity("admin-token", "admin", via_token=True)
        return None
    session = await get_session(request)
    name = session.get("user")
    if not name or time.time() - session.get("login", 0) > max_age:
        return None
    account = await request.app[RUNTIME].db(accounts(request).get, name)
    if account is None or account.epoch != session.get("epoch"):
        return None
    return Identity(account.name, account.role, session.get("csrf", ""))


async def _check_csrf(request: web.Request, who: Identity) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get(CSRF_FIELD, ""))
    if not who.csrf or not hmac.compare_digest(given.encode(), who.csrf.encode()):
        raise _json(403, "missing or wrong CSRF token; reload the page")


def require_admin(request: web.Request) -> Identity:
    who = request["reviewer"]
    if not who.is_admin:
        raise _json(403, "only an admin may do this")
    return who


def _json(status: int, reason: str, headers: dict[str, str] | None = None) -> web.HTTPException:
    cls = web.HTTPException
    for c in (web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPForbidden, web.HTTPNotFound,
              web.HTTPConflict, web.HTTPTooManyRequests, web.HTTPRequestEntityTooLarge,
              web.HTTPUnsupportedMediaType, web.HTTPInternalServerError, web.HTTPMethodNotAllowed):
        if c.status_code == status:
            cls = c
    extra = {"max_size": 0, "actual_size": 0} if cls is web.HTTPRequestEntityTooLarge else {}
    if cls is web.HTTPMethodNotAllowed:
        return web.HTTPBadRequest(text=json.dumps({"error": reason}), content_type="application/json")
    return cls(text=json.dumps({"error": reason}), content_type="application/json", headers=headers, **extra)


def _page_error(status: int, reason: str) -> web.HTTPException:
    e = _json(status, reason)
    e.text = f"{status}: {reason}"
    e.content_type = "text/plain"
    return e


def _next(value: str | None) -> str:
    """Only a local review path: never an open redirect."""
    if value and value.startswith(PAGES) and not value.startswith("//") and "\\" not in value:
        return value
    return PAGES


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    session = await get_session(request)
    if not session.get("csrf"):
        session["csrf"] = secrets.token_urlsafe(24)
    context = {"csrf": session["csrf"], "next": _next(request.query.get("next")), "error": error, "who": None}
    return aiohttp_jinja2.render_template("login.html", request, context, status=status)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    session = await get_session(request)
    given = str(form.get(CSRF_FIELD, ""))
    if not session.get("csrf") or not hmac.compare_digest(given.encode(), session["csrf"].encode()):
        return await login_page(request, "The form expired; please try again.", 403)
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    address = client_address(request)  # behind a trusted proxy, the client it forwarded for
    rt = request.app[RUNTIME]
    wait, attempt = await rt.logins.reserve(name, address)  # counted in every worker's storage before the check
    if attempt is None:
        response = await login_page(request, f"Too many failed attempts; try again in {int(wait // 60) + 1} minutes.", 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    found = await rt.db(accounts(request).credentials, name)
    stored = found[1] if found else None
    ok = await asyncio.to_thread(check_password, password, stored or DUMMY_HASH)
    if not (ok and found):  # the attempt stays counted
        log.info("failed review login from %s", address)  # never the password; the name may be a typo of one
        return await login_page(request, "Wrong name or password.", 401)
    await rt.logins.succeeded(name, address, attempt)
    account = found[0]
    session = await new_session(request)  # a fresh session: nothing from before the login carries over
    session.update(user=account.name, epoch=account.epoch, login=time.time(), csrf=secrets.token_urlsafe(24))
    log.info("review login: %s", account.name)
    raise web.HTTPSeeOther(_next(str(form.get("next", ""))))


async def logout(request: web.Request) -> web.Response:
    session = await get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/review/login")

