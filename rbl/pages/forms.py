"""Forms that cannot be sent from another site: a signed field tied to a cookie.

Every page with a form sets a random cookie (``rbl_form``; SameSite=Strict,
HttpOnly) and puts in a hidden field the HMAC of that cookie and the form's
purpose, under a key the store keeps. A POST is taken only with both, and
matching: another site can neither read the field nor make the browser send
the cookie with its request (SameSite=Strict), and a field copied from one
browser is worthless in another, whose cookie differs. The Origin header,
where the browser sends one, must name this server too. Pure: the key and the
values come in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "rbl_form"
FIELD = "form"
MAX_VALUE = 100  # longer cookie or field text is none of ours


def new_cookie() -> str:
    return secrets.token_urlsafe(24)


def good_cookie(cookie: object) -> bool:
    """Whether ``cookie`` looks like one :func:`new_cookie` made (else a new one is set)."""
    return isinstance(cookie, str) and 16 <= len(cookie) <= MAX_VALUE and cookie.isascii() \
        and all(c.isalnum() or c in "-_" for c in cookie)


def sign(key: bytes, cookie: str, purpose: str) -> str:
    """The hidden field's value for a form of ``purpose`` in the browser holding ``cookie``."""
    mac = hmac.new(key, f"{purpose}\0{cookie}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def valid(key: bytes, cookie: object, purpose: str, field: object) -> bool:
    """Whether a posted form of ``purpose`` carries the field that ``cookie`` was signed into."""
    if not isinstance(cookie, str) or not isinstance(field, str) or not cookie or len(cookie) > MAX_VALUE \
            or len(field) > MAX_VALUE:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters, which anyone can post.
    return hmac.compare_digest(sign(key, cookie, purpose).encode(), field.encode("utf-8", "surrogatepass"))


def same_origin(origin: str | None, scheme: str, host: str | None) -> bool:
    """Whether the Origin header (None: the browser sent none) is this server's own."""
    if origin is None:
        return True  # older browsers send none on same-origin posts; the signed field still guards
    return host is not None and origin == f"{scheme}://{host}"
