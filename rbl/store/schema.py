"""Schema changes as named, ordered migrations recorded in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


def _listings(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE listings (
            id INTEGER PRIMARY KEY,
            zone TEXT NOT NULL,
            subject TEXT NOT NULL,          -- canonical text: 192.0.2.0/24, *.example.com
            kind TEXT NOT NULL CHECK (kind IN ('ip4', 'ip6', 'domain')),
            net BLOB,                       -- network address, 4 or 16 bytes; NULL for domains
            plen INTEGER,                   -- prefix length; NULL for domains
            exclude INTEGER NOT NULL DEFAULT 0,  -- an exclusion cuts a hole (rbldnsd '!')
            code TEXT,                      -- A value override (NULL: the zone's block code)
            txt TEXT,                       -- TXT override (NULL: the zone's template)
            category TEXT,
            reason TEXT,
            source TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            hits INTEGER NOT NULL DEFAULT 1,
            expires_at TEXT,                -- NULL: never
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removed')),
            UNIQUE (zone, subject)
        )
        """
    )
    db.execute("CREATE INDEX listings_serving ON listings (state, zone, kind)")
    db.execute(
        """
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT,
            before TEXT,                    -- JSON of the row before, NULL if new
            after TEXT                      -- JSON of the row after, NULL if gone
        )
        """
    )
    # Append-only: history that can be rewritten is not history.
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER audit_no_{op.lower()} BEFORE {op} ON audit "
            "BEGIN SELECT RAISE(ABORT, 'the audit table is append-only'); END"
        )
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    # generation: bumped by every committed change, so servers notice cheaply.
    db.execute("INSERT INTO meta (key, value) VALUES ('generation', 0), ('serial', 0)")


def _serving_indexes(db: sqlite_utils.Database) -> None:
    # The compiler reads single IPv4 listings (the bulk of a big list) in one
    # aggregate; a covering partial index keeps that read off the wide table rows.
    db.execute(
        "CREATE INDEX listings_singles ON listings (zone, code, txt, expires_at, net) "
        "WHERE state = 'active' AND kind = 'ip4' AND plen = 32 AND exclude = 0"
    )


def _patch_indexes(db: sqlite_utils.Database) -> None:
    # A small change is patched from the listings around and inside its range,
    # and the server asks after every change when the next listing expires.
    db.execute("CREATE INDEX listings_net ON listings (zone, kind, net)")
    db.execute("CREATE INDEX listings_expiry ON listings (expires_at) WHERE state = 'active'")


def _lifetime(db: sqlite_utils.Database) -> None:
    # The lifetime a listing was given, so a relisted subject can get a multiple of it.
    db.execute("ALTER TABLE listings ADD COLUMN lifetime INTEGER")  # seconds; NULL: never expires


def _tokens(db: sqlite_utils.Database) -> None:
    # Bearer tokens for the HTTP API, each scoped to one vendor or to the operator.
    # Only a hash is kept: a token is shown once, when created. A token is a long
    # random secret (256 bits), not a password, so a plain unsalted SHA-256 is the
    # right hash (as GitHub and npm store theirs): nothing can be guessed or looked
    # up in a table, and a presented token is found by its hash with one index probe.
    db.execute(
        """
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL CHECK (scope IN ('operator', 'vendor')),
            vendor TEXT,                    -- the vendor's name; NULL for an operator token
            hash TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the token; the token itself is never stored
            hint TEXT NOT NULL,             -- the token's first 8 characters, to tell tokens apart
            label TEXT,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            revoked_at TEXT,                -- NULL: in force
            revoked_by TEXT,
            CHECK ((scope = 'operator') = (vendor IS NULL))
        )
        """
    )
    db.execute("CREATE INDEX tokens_vendor ON tokens (vendor)")


def _evidence(db: sqlite_utils.Database) -> None:
    # A vendor's remediation claims, kept as submitted: one row per item, grouped by
    # the submission they came in (which carries the Idempotency-Key of a retry).
    db.execute(
        """
        CREATE TABLE submissions (
            id INTEGER PRIMARY KEY,
            vendor TEXT NOT NULL,
            token_id INTEGER NOT NULL REFERENCES tokens (id),
            idempotency_key TEXT,           -- NULL: the client did not ask for safe retries
            body_hash TEXT NOT NULL,        -- a retry with the same key must carry the same body
            received_at TEXT NOT NULL,
            items INTEGER NOT NULL,
            UNIQUE (vendor, idempotency_key)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE evidence (
            id INTEGER PRIMARY KEY,
            submission INTEGER NOT NULL REFERENCES submissions (id),
            vendor TEXT NOT NULL,
            subject TEXT NOT NULL,          -- canonical address or CIDR, inside the vendor's ranges
            kind TEXT NOT NULL CHECK (kind IN ('ip4', 'ip6')),
            net BLOB NOT NULL,
            plen INTEGER NOT NULL,
            action TEXT NOT NULL,
            reference TEXT NOT NULL,        -- the vendor's ticket
            acted_at TEXT NOT NULL,
            identity TEXT,                  -- the tenant's DKIM signing domain, if given
            received_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX evidence_vendor_subject ON evidence (vendor, subject)")


def _remediated(db: sqlite_utils.Database) -> None:
    # When the vendor's accepted evidence says it acted on a listed address in its shared
    # space: the listing then answers throttle until its shortened expiry.
    db.execute("ALTER TABLE listings ADD COLUMN remediated_at TEXT")


def _case_history(db: sqlite_utils.Database) -> None:
    # A listing is a vendor's case (DESIGN section 4): besides when it was remediated, the
    # score needs when it was listed again after that (recidivism) and whether the vendor
    # disputed it (a false positive counts neither way). remediated_at stays set after a
    # relisting: it is history now, and the code says what is served.
    db.execute("ALTER TABLE listings ADD COLUMN relisted_at TEXT")
    db.execute("ALTER TABLE listings ADD COLUMN disputed_at TEXT")


def _delist_requests(db: sqlite_utils.Database) -> None:
    # Requests from anyone to review a listing, queued for the operator; closing one
    # as delisted removes the listing through the listing store, with its own audit rows.
    db.execute(
        """
        CREATE TABLE delist_requests (
            id INTEGER PRIMARY KEY,
            zone TEXT NOT NULL,
            subject TEXT NOT NULL,          -- canonical address, CIDR or domain, as the requester named it
            reason TEXT NOT NULL,           -- the requester's words
            email TEXT NOT NULL,            -- where the operator answers
            client TEXT NOT NULL,           -- the requester's address, as the rate limit counted it
            listed_as TEXT NOT NULL,        -- JSON: the codes and listings in force when asked
            created_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
            resolution TEXT CHECK (resolution IN ('delisted', 'rejected')),
            note TEXT,                      -- the operator's answer
            closed_at TEXT,
            closed_by TEXT,
            CHECK ((state = 'closed') = (resolution IS NOT NULL))
        )
        """
    )
    db.execute("CREATE INDEX delist_requests_state ON delist_requests (state, id)")


def _case_index(db: sqlite_utils.Database) -> None:
    # Scoring reads every single-address listing of the window at each compile: a covering
    # index makes that one sequential scan instead of a table lookup per row (3.5 s -> 0.7 s
    # for a million listings).
    db.execute("CREATE INDEX listings_cases ON listings (zone, kind, plen, exclude, first_seen, net, "
               "remediated_at, relisted_at, disputed_at, state, expires_at)")


def _compact_listings(db: sqlite_utils.Database) -> None:
    # Ten million listings took 743 bytes each: six indexes, times as 20-character text,
    # and a JSON audit row per imported line. Now one unique key that every lookup uses
    # (a domain's key is its subject text), times as seconds since the epoch, one partial
    # index for the next expiry; the compiler and the scoring scan the table itself.
    # A big import is audited as one row plus the packed keys it changed (import_sets).
    db.execute(
        """
        CREATE TABLE listings_compact (
            id INTEGER PRIMARY KEY,
            zone TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('ip4', 'ip6', 'domain')),
            net BLOB NOT NULL,              -- network address, 4 or 16 bytes; a domain: its subject text
            plen INTEGER NOT NULL,          -- prefix length; 0 for a domain
            subject TEXT NOT NULL,          -- canonical text: 192.0.2.0/24, *.example.com
            exclude INTEGER NOT NULL DEFAULT 0,
            code TEXT,
            txt TEXT,
            category TEXT,
            reason TEXT,
            source TEXT,
            first_seen INTEGER NOT NULL,    -- times: seconds since the epoch, UTC
            last_seen INTEGER NOT NULL,
            hits INTEGER NOT NULL DEFAULT 1,
            expires_at INTEGER,             -- NULL: never
            state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removed')),
            lifetime INTEGER,
            remediated_at INTEGER,
            relisted_at INTEGER,
            disputed_at INTEGER
        )
        """
    )
    db.execute(
        """
        INSERT INTO listings_compact
        SELECT id, zone, kind, coalesce(net, CAST(subject AS BLOB)), coalesce(plen, 0), subject, exclude, code,
               txt, category, reason, source, unixepoch(first_seen), unixepoch(last_seen), hits,
               unixepoch(expires_at), state, lifetime, unixepoch(remediated_at), unixepoch(relisted_at),
               unixepoch(disputed_at)
        FROM listings ORDER BY zone, kind, net, plen
        """
    )
    db.execute("DROP TABLE listings")
    db.execute("ALTER TABLE listings_compact RENAME TO listings")
    # A named index, not a table constraint, so queries can say INDEXED BY listings_key.
    db.execute("CREATE UNIQUE INDEX listings_key ON listings (zone, kind, net, plen)")
    db.execute("CREATE INDEX listings_expiry ON listings (expires_at) WHERE state = 'active' AND expires_at IS NOT NULL")
    db.execute(
        """
        CREATE TABLE import_sets (
            audit INTEGER NOT NULL REFERENCES audit (id),   -- the import's one audit row
            zone TEXT NOT NULL,
            change TEXT NOT NULL CHECK (change IN ('added', 'changed', 'removed')),
            kind TEXT NOT NULL CHECK (kind IN ('ip4', 'ip6', 'domain')),
            keys BLOB NOT NULL              -- sorted: net and plen (5 or 17 bytes each); domains: subjects, one a line
        )
        """
    )
    db.execute("CREATE INDEX import_sets_zone ON import_sets (zone, kind, audit)")
    # A subject's history reads its own rows; imports are found through import_sets.
    db.execute("CREATE INDEX audit_subject ON audit (subject) WHERE subject IS NOT NULL")


def _public_pages(db: sqlite_utils.Database) -> None:
    # The pages of rbl serve --http (rbl.pages): sign-in sessions, a vendor's day-by-day
    # record for its plots, disputes queued beside delisting requests, and the key that
    # signs the pages' anti-forgery fields.
    db.execute(
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,      -- SHA-256 of the cookie's value, which is never stored
            token_id INTEGER NOT NULL REFERENCES tokens (id),
            created_at INTEGER NOT NULL,    -- seconds since the epoch
            expires_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX sessions_token ON sessions (token_id)")
    db.execute(
        """
        CREATE TABLE vendor_days (
            vendor TEXT NOT NULL,
            day TEXT NOT NULL,              -- YYYY-MM-DD, UTC: the last scoring of that day
            tier TEXT NOT NULL,
            score REAL,                     -- NULL: nothing judged yet
            cases INTEGER NOT NULL,
            remediated_in_time INTEGER NOT NULL,
            overdue INTEGER NOT NULL,
            open INTEGER NOT NULL,
            listed INTEGER NOT NULL,        -- single addresses listed in its space then
            recorded_at INTEGER NOT NULL,
            PRIMARY KEY (vendor, day)
        ) WITHOUT ROWID
        """
    )
    db.execute("ALTER TABLE delist_requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'request' "
               "CHECK (kind IN ('request', 'dispute'))")
    # Disputes stored before this migration join the operator's queue.
    db.execute(
        """
        INSERT INTO delist_requests (zone, subject, reason, email, client, listed_as, created_at, kind)
        SELECT l.zone, l.subject,
               'false positive reported by the vendor' || coalesce(' (ticket ' || (
                   SELECT e.reference FROM evidence e WHERE e.subject = l.subject AND e.action = 'false_positive'
                   ORDER BY e.id DESC LIMIT 1) || ')', ''),
               '', 'vendor:' || coalesce((SELECT e.vendor FROM evidence e WHERE e.subject = l.subject
                                           AND e.action = 'false_positive' ORDER BY e.id DESC LIMIT 1), 'unknown'),
               json_object('codes', json_array(), 'listings', json_array(l.subject)),
               strftime('%Y-%m-%dT%H:%M:%SZ', l.disputed_at, 'unixepoch'), 'dispute'
        FROM listings l WHERE l.disputed_at IS NOT NULL AND l.state = 'active'
        """
    )
    db.execute("CREATE TABLE page_keys (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
    db.execute("INSERT INTO page_keys (name, value) VALUES ('forms', randomblob(32))")


def _outbox(db: sqlite_utils.Database) -> None:
    # Notices to vendors (rbl.store.outbox): each event is written in the transaction of the
    # change that causes it, numbered per vendor; each channel (webhook, email) keeps how far it
    # has delivered, so delivery resumes where it stopped after a restart and nothing is dropped.
    db.execute(
        """
        CREATE TABLE outbox (
            vendor TEXT NOT NULL,
            id INTEGER NOT NULL,            -- 1, 2, 3... per vendor, never reused
            type TEXT NOT NULL,             -- listed, escalated, remediated, overdue, tier, delisted
            at INTEGER NOT NULL,            -- seconds since the epoch
            event TEXT NOT NULL,            -- the event as JSON, exactly as every channel sends it
            PRIMARY KEY (vendor, id)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE notice_channels (
            vendor TEXT NOT NULL,
            channel TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
            delivered INTEGER NOT NULL DEFAULT 0,  -- every event up to this id has been accepted
            delivered_at INTEGER,           -- the last accepted delivery
            attempts INTEGER NOT NULL DEFAULT 0,   -- failed attempts, ever
            retries INTEGER NOT NULL DEFAULT 0,    -- failed attempts since the last success
            down_since INTEGER,             -- the first failure since the last success
            next_at INTEGER,                -- not before this (backoff)
            last_error TEXT,
            PRIMARY KEY (vendor, channel)
        ) WITHOUT ROWID
        """
    )
    # What time-driven events (expired, overdue, tier, escalated) have already said, so each is
    # said once: a cursor of time, a vendor's last tier, its dense ranges.
    db.execute("CREATE TABLE notice_marks (vendor TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
               "PRIMARY KEY (vendor, name)) WITHOUT ROWID")
    # Changes committed while their writer could not read the vendors' ranges (a broken policy
    # folder: listings keep flowing): the audit rows whose events rbl serve still owes, written in
    # the change's transaction and replaced by the events, from its last good policy, in one.
    db.execute("CREATE TABLE notices_owed (id INTEGER PRIMARY KEY, audit_from INTEGER NOT NULL, "
               "audit_to INTEGER NOT NULL)")
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    # Listings that expired or went overdue before notices existed are not news.
    db.execute("INSERT INTO notice_marks (vendor, name, value) VALUES ('', 'expired', ?), ('', 'overdue', ?)",
               [str(now), str(now)])


def _identities(db: sqlite_utils.Database) -> None:
    # The DKIM signing domains seen abusing a listed address (the tenant, not the address):
    # sorted, one a line; NULL for the millions of listings that name none.
    db.execute("ALTER TABLE listings ADD COLUMN identities TEXT")


def _identity_index(db: sqlite_utils.Database) -> None:
    # The tenant zone reads only the listings that name identities: a few among millions.
    db.execute("CREATE INDEX listings_identities ON listings (zone, kind, net) WHERE identities IS NOT NULL")


def _access_keys(db: sqlite_utils.Database) -> None:
    # Access keys for the DNS zones (2.0.0.127.KEY.bl.example), hashed like tokens: a copy of the
    # database hands out no working key. Usage is the primary's count of the period in force,
    # written every few seconds, so `rbl key list` and a restart know it.
    db.execute(
        """
        CREATE TABLE access_keys (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,      -- the operator's name for it: who holds it
            hash TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the key; the key itself is never stored
            hint TEXT NOT NULL,             -- its first 4 characters, to tell keys apart
            zones TEXT,                     -- JSON list of zone origins it opens; NULL: every keyed zone
            quota INTEGER,                  -- queries per period; NULL: no quota
            period INTEGER NOT NULL,        -- the quota's period in seconds (epoch-aligned)
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            revoked_at TEXT,                -- NULL: in force
            revoked_by TEXT
        )
        """
    )
    db.execute("CREATE TABLE key_usage (key_id INTEGER PRIMARY KEY REFERENCES access_keys (id), "
               "period_start INTEGER NOT NULL, used INTEGER NOT NULL, total INTEGER NOT NULL)")
    # Bumped by every key change: the primary's watcher compares it, as it does the generation.
    db.execute("INSERT INTO meta (key, value) VALUES ('keys', 0)")


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_listings_audit_meta", _listings),
    ("0002_serving_indexes", _serving_indexes),
    ("0003_patch_indexes", _patch_indexes),
    ("0004_listing_lifetime", _lifetime),
    ("0005_tokens", _tokens),
    ("0006_evidence", _evidence),
    ("0007_listing_remediated", _remediated),
    ("0008_case_history", _case_history),
    ("0009_delist_requests", _delist_requests),
    ("0010_case_index", _case_index),
    ("0011_compact_listings", _compact_listings),
    ("0012_public_pages", _public_pages),
    ("0013_outbox", _outbox),
    ("0014_identities", _identities),
    ("0015_identity_index", _identity_index),
    ("0016_access_keys", _access_keys),
]


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations this database lacks, in order; return their names."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        with db.conn:
            step(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                [name, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")],
            )
        applied.append(name)
    return applied
