"""Bearer tokens for the HTTP API: created, listed, revoked and verified; stored only as hashes.

A token is ``rbl_`` and 43 URL-safe characters (256 random bits), scoped to one
vendor or to the operator. Its text is returned once, by :meth:`TokenStore.create`;
the store keeps its SHA-256 and its first 8 characters (the hint), and never logs
or audits the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass

from rbl.errors import StoreError
from rbl.store.database import Database, append_audit, timestamp

PREFIX = "rbl_"
HINT_LENGTH = 8
SCOPES = ("operator", "vendor")
# No token is longer: longer text is refused before it is hashed.
MAX_LENGTH = 256

_COLUMNS = "id, scope, vendor, hint, label, created_at, created_by, revoked_at, revoked_by"


@dataclass(slots=True, frozen=True)
class Token:
    """One credential as the store describes it: never its text nor its hash."""

    id: int
    scope: str
    vendor: str | None
    hint: str
    label: str | None
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict:
        """JSON-ready, for audit rows and listings (holds nothing secret)."""
        return asdict(self)

    def describe(self) -> str:
        """``token 3 for vendor aws`` or ``token 4 for the operator``."""
        return f"token {self.id} for " + (f"vendor {self.vendor}" if self.scope == "vendor" else "the operator")


def token_hash(text: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Tokens in the store's database, written through its transactions (a ListingStore is one too)."""

    def __init__(self, store: Database):
        self.store = store

    # -- reads ---------------------------------------------------------------

    def _rows(self, sql: str, params: tuple | list = ()) -> list[Token]:
        cursor = self.store.db.execute(f"SELECT {_COLUMNS} FROM tokens {sql}", list(params))
        return [Token(*row) for row in cursor.fetchall()]

    def get(self, token_id: int) -> Token | None:
        rows = self._rows("WHERE id = ?", [token_id])
        return rows[0] if rows else None

    def verify(self, text: object) -> Token | None:
        """The token in force that ``text`` is, or None (unknown, revoked or malformed).

        Never raises on what a client sends. The presented text is hashed and
        looked up by its hash, so the lookup's timing tells nothing about any
        stored token; the hashes are then compared in constant time.
        """
        if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_LENGTH:
            return None
        digest = token_hash(text)
        row = self.store.db.execute(
            f"SELECT {_COLUMNS}, hash FROM tokens WHERE hash = ?", [digest]
        ).fetchone()
        if row is None or not hmac.compare_digest(row[-1], digest):
            return None
        token = Token(*row[:-1])
        return token if token.active else None

    # -- writes --------------------------------------------------------------

    def create(self, scope: str, vendor: str | None, actor: str, label: str | None = None) -> tuple[Token, str]:
        """A new token: its description and its text, which nothing can show again.

        :raises StoreError: for an unknown scope, a vendor token without a vendor
            or an operator token with one.
        """
        if scope not in SCOPES:
            raise StoreError(f"token scope {scope!r}: expected one of {', '.join(SCOPES)}")
        if scope == "vendor" and not vendor:
            raise StoreError("a vendor token needs a vendor")
        if scope == "operator" and vendor is not None:
            raise StoreError(f"an operator token has no vendor (got {vendor!r})")
        text = PREFIX + secrets.token_urlsafe(32)
        stamp = timestamp(self.store.clock())
        with self.store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO tokens (scope, vendor, hash, hint, label, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [scope, vendor, token_hash(text), text[:HINT_LENGTH], label, stamp, actor],
            )
            token = Token(id=cursor.lastrowid, scope=scope, vendor=vendor, hint=text[:HINT_LENGTH], label=label,
                          created_at=stamp, created_by=actor, revoked_at=None)
            _audit(conn, stamp, actor, "token-create", None, token)
        return token, text

    def revoke(self, token_id: int, actor: str, *, scope: str | None = None) -> Token:
        """Revoke a token in force; return it as revoked.

        :raises StoreError: naming the id when no such token (of ``scope``, if
            given) exists or it is already revoked; then nothing changes.
        """
        stamp = timestamp(self.store.clock())
        with self.store.transaction() as conn:
            old = self.get(token_id)
            if old is None:
                raise StoreError(f"no {scope + ' ' if scope else ''}token {token_id}")
            if scope is not None and old.scope != scope:
                raise StoreError(f"token {token_id} is {_article(old.scope)} token, not {_article(scope)} token")
            if not old.active:
                raise StoreError(f"{old.describe()} is already revoked (at {old.revoked_at} by {old.revoked_by})")
            conn.execute("UPDATE tokens SET revoked_at = ?, revoked_by = ? WHERE id = ?", [stamp, actor, token_id])
            conn.execute("DELETE FROM sessions WHERE token_id = ?", [token_id])  # signed out everywhere, at once
            new = Token(**dict(old.as_dict(), revoked_at=stamp, revoked_by=actor))
            _audit(conn, stamp, actor, "token-revoke", old, new)
        return new

    def list(self, vendor: str | None = None, include_revoked: bool = True, *, scope: str | None = None) -> list[Token]:
        """Tokens by id: all, one vendor's, or one scope's; revoked ones too unless asked not to."""
        where, params = ["1"], []
        if vendor is not None:
            where.append("vendor = ?")
            params.append(vendor)
        if scope is not None:
            where.append("scope = ?")
            params.append(scope)
        if not include_revoked:
            where.append("revoked_at IS NULL")
        return self._rows(f"WHERE {' AND '.join(where)} ORDER BY id", params)


def _article(scope: str) -> str:
    return ("an " if scope[0] in "aeiou" else "a ") + scope


def _audit(conn, stamp: str, actor: str, action: str, before: Token | None, after: Token) -> None:
    # No subject: a token changes no DNS answer, so the server's patcher skips the row.
    append_audit(conn, [(stamp, actor, action, None, before.as_dict() if before else None, after.as_dict())])
