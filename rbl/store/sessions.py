"""Sign-in sessions of the pages, and the key that signs their forms.

Signing in on a page trades a token for a session: a random cookie value
whose SHA-256 alone is stored, tied to the token it was opened with. A
session is good while it has not expired, not been ended (sign-out) and its
token is in force: revoking the token ends every session opened with it at
once, since :meth:`SessionStore.verify` reads the token's state on every page.
Opening and ending sessions changes no DNS answer and is not audited (the
token's own audit rows say who holds what); the sessions carry no token text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from rbl.store.database import Database, epoch
from rbl.store.tokens import _COLUMNS as TOKEN_COLUMNS
from rbl.store.tokens import Token

LIFETIME = dt.timedelta(hours=12)  # a session ends this long after sign-in, in use or not
MAX_COOKIE = 100  # longer cookie text is no session of ours: refused before it is hashed


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    def __init__(self, store: Database):
        self.store = store

    def open(self, token: Token, lifetime: dt.timedelta = LIFETIME) -> str:
        """A new session for ``token`` (in force): the cookie's value, returned once."""
        text = secrets.token_urlsafe(32)
        now = self.store.clock()
        with self.store.transaction(answers=False) as conn:
            # Expired sessions go as new ones come: the table stays the size of those in use.
            conn.execute("DELETE FROM sessions WHERE expires_at <= ?", [epoch(now)])
            conn.execute("INSERT INTO sessions (hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                         [_hash(text), token.id, epoch(now), epoch(now + lifetime)])
        return text

    def verify(self, text: object) -> Token | None:
        """The token in force behind the session ``text``, or None (unknown, expired, ended, or its
        token revoked). Never raises on what a client sends."""
        if not isinstance(text, str) or not text or len(text) > MAX_COOKIE:
            return None
        columns = ", ".join(f"t.{c.strip()}" for c in TOKEN_COLUMNS.split(","))
        row = self.store.db.execute(
            f"SELECT {columns}, s.hash FROM sessions s JOIN tokens t ON t.id = s.token_id "
            "WHERE s.hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL",
            [_hash(text), epoch(self.store.clock())]).fetchone()
        if row is None or not hmac.compare_digest(row[-1], _hash(text)):
            return None
        return Token(*row[:-1])

    def end(self, text: object) -> bool:
        """Sign out: the session ``text`` ends; whether there was one."""
        if not isinstance(text, str) or not text or len(text) > MAX_COOKIE:
            return False
        with self.store.transaction(answers=False) as conn:
            return conn.execute("DELETE FROM sessions WHERE hash = ?", [_hash(text)]).rowcount > 0

    def count(self, token_id: int) -> int:
        """Sessions of a token not yet expired (an operator's view of who is signed in)."""
        return self.store.db.execute("SELECT count(*) FROM sessions WHERE token_id = ? AND expires_at > ?",
                                     [token_id, epoch(self.store.clock())]).fetchone()[0]

    def form_key(self) -> bytes:
        """The key that signs the pages' anti-forgery fields: made by the migration, kept across
        restarts, so a form rendered before a restart can still be sent after it."""
        return bytes(self.store.db.execute("SELECT value FROM page_keys WHERE name = 'forms'").fetchone()[0])
