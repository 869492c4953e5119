"""The HTTP API described as OpenAPI 3 (``GET /openapi.json``): routes, bodies, errors, examples.

Tests hold it to the application: every route is described, every example
validates against its schema, and a property-based fuzzer (schemathesis)
driven by it finds no 5xx on a live server.
"""

from __future__ import annotations

from rbl import __version__
from rbl.policy.delisting import MAX_EMAIL, MAX_NOTE, MAX_REASON, MAX_SUBJECT, RESOLUTIONS, STATES
from rbl.policy.evidence import ACTIONS, MAX_ITEMS, MAX_REFERENCE
from rbl.store.outbox import EVENT_TYPES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, naming the item and field"},
        "field": {"type": "string"},
        "item": {"type": "integer", "minimum": 0},
        "path": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1, "description": "429: seconds until a request is allowed"},
    },
}


def _errors(*codes: int, words: dict[int, str] | None = None) -> dict:
    words = {400: "malformed", 401: "no or unknown bearer token", 403: "not allowed for this token",
             404: "not found", 409: "Idempotency-Key reused for another body", 413: "too large",
             429: "too many requests from this client", 503: "no snapshot yet", **(words or {})}
    out = {str(code): {"description": words[code],
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
           for code in codes}
    if 429 in codes:
        out["429"]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


_EVIDENCE_ITEM = {
    "type": "object",
    "required": ["subject", "action", "reference", "acted_at"],
    "additionalProperties": False,
    "properties": {
        "subject": {"type": "string", "description": "an address or CIDR inside the vendor's own ranges"},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "reference": {"type": "string", "minLength": 1, "maxLength": MAX_REFERENCE,
                      "description": "the vendor's ticket"},
        "acted_at": {"type": "string", "format": "date-time", "description": "RFC 3339, not in the future"},
        "identity": {"type": "string", "description": "the tenant's DKIM signing domain"},
    },
}

EVIDENCE_EXAMPLE = {"items": [
    {"subject": "3.5.140.7", "action": "tenant_terminated", "reference": "T-1042", "acted_at": "2026-11-27T10:00:00Z"},
    {"subject": "3.5.140.0/28", "action": "port25_blocked", "reference": "T-1043", "acted_at": "2026-11-27T11:30:00Z",
     "identity": "mail.tenant.example"},
]}
DELIST_EXAMPLE = {"subject": "192.0.2.44", "reason": "The compromised account that sent spam was closed "
                                             "on 2026-11-27; outbound mail now goes through our filtered relay.",
                  "email": "postmaster@example.com"}
DELIST_CLOSE_EXAMPLE = {"resolution": "delisted", "note": "Thanks: the traps have seen nothing since the fix."}
_DELIST_REQUEST = {
    "type": "object",
    "required": ["id", "zone", "subject", "reason", "email", "listed_as", "created_at", "state"],
    "properties": {"id": {"type": "integer"}, "zone": {"type": "string"}, "subject": {"type": "string"},
                   "reason": {"type": "string"}, "email": {"type": "string"},
                   "client": {"type": "string", "description": "the requester's address (IPv6: its /64)"},
                   "listed_as": {"type": "object", "description": "codes and listings in force when asked"},
                   "created_at": {"type": "string", "format": "date-time"},
                   "state": {"type": "string", "enum": list(STATES)},
                   "resolution": {"type": "string", "enum": list(RESOLUTIONS), "nullable": True},
                   "note": {"type": "string", "nullable": True},
                   "closed_at": {"type": "string", "format": "date-time", "nullable": True},
                   "closed_by": {"type": "string", "nullable": True},
                   "kind": {"type": "string", "enum": ["request", "dispute"],
                            "description": "request: someone asked for review; dispute: the vendor (client "
                                           "vendor:NAME) reported a false positive; both close the same way"}},
}
METRICS_EXAMPLE = """\
# HELP rbl_dns_queries_total DNS queries answered, by zone (empty: none of ours), response code and the codes of the name's answer (none: not listed).
# TYPE rbl_dns_queries_total counter
rbl_dns_queries_total{zone="bl.example",rcode="NOERROR",code="block"} 1042
rbl_dns_queries_total{zone="bl.example",rcode="NXDOMAIN",code="none"} 20817
# HELP rbl_snapshot_serial Serial of the snapshot being served (the zones' SOA serial).
# TYPE rbl_snapshot_serial gauge
rbl_snapshot_serial 1764500000
"""
LISTINGS_EXAMPLE = {"subjects": ["192.0.2.44", "2001:db8::44", "spam.example"], "reason": "spam trap hit",
                    "expires": "7d"}


def spec() -> dict:
    bearer = [{"bearer": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "rbl", "version": __version__,
                 "description": "A DNS blocklist fair to tenants of shared cloud space: explanations for anyone, "
                                "remediation evidence from vendors, listings from the operator, delisting requests from anyone."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "rbl vendor token create VENDOR / rbl operator token create"}},
            "schemas": {
                "Error": _ERROR,
                "Lookup": {"type": "object", "required": ["subject", "kind", "zones", "listed"],
                           "properties": {"subject": {"type": "string"}, "kind": {"type": "string"},
                                          "listed": {"type": "boolean"}, "serial": {"type": "integer"},
                                          "range": {"type": "object", "nullable": True},
                                          "zones": {"type": "object"}}},
                "EvidenceBody": {"type": "object", "required": ["items"], "additionalProperties": False,
                                 "properties": {"items": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                                                          "items": _EVIDENCE_ITEM}}},
                "EvidenceReply": {"type": "object", "required": ["submission", "accepted", "evidence", "replayed"],
                                  "properties": {"submission": {"type": "integer"}, "accepted": {"type": "integer"},
                                                 "evidence": {"type": "array", "items": {"type": "integer"}},
                                                 "replayed": {"type": "boolean"}}},
                "VendorEvents": {"type": "object", "required": ["vendor", "events", "next", "newest"],
                                 "properties": {
                                     "vendor": {"type": "string"},
                                     "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                     "next": {"type": "integer", "minimum": 0,
                                              "description": "the last event's id: ask with after=next"},
                                     "newest": {"type": "integer", "minimum": 0}}},
                "Event": {"type": "object", "required": ["id", "vendor", "type", "at"],
                          "description": "a notice; the same JSON in webhook batches and email digests",
                          "properties": {
                              "id": {"type": "integer", "minimum": 1, "description": "increasing per vendor"},
                              "vendor": {"type": "string"},
                              "type": {"type": "string", "enum": list(EVENT_TYPES)},
                              "at": {"type": "string", "format": "date-time"},
                              "subject": {"type": "string"}, "zone": {"type": "string"},
                              "codes": {"type": "array", "items": {"type": "object"}},
                              "reason": {"type": "string", "nullable": True},
                              "category": {"type": "string", "nullable": True},
                              "first_seen": {"type": "string", "nullable": True},
                              "expires_at": {"type": "string", "nullable": True},
                              "sla_deadline": {"type": "string", "nullable": True},
                              "space": {"type": "string"}, "range": {"type": "string"}}},
                "Vendor": {"type": "object", "required": ["vendor", "tier", "score", "numbers", "open_cases"],
                           "properties": {"vendor": {"type": "string"},
                                          "tier": {"type": "string", "enum": ["cooperative", "neutral", "negligent"]},
                                          "score": {"type": "number", "nullable": True},
                                          "reason": {"type": "string"}, "numbers": {"type": "object"},
                                          "rules": {"type": "object"},
                                          "open_cases": {"type": "array", "items": {"type": "object"}},
                                          "listings": {"type": "object"}}},
                "ListingsBody": {"type": "object", "required": ["subjects"], "additionalProperties": False,
                                 "properties": {"subjects": {"type": "array", "minItems": 1, "maxItems": 10000,
                                                             "items": {"type": "string"}},
                                                "zone": {"type": "string"}, "category": {"type": "string"},
                                                "reason": {"type": "string"}, "source": {"type": "string"},
                                                "expires": {"type": "string", "description": "30m, 6h, 7d or never"},
                                                "identities": {"type": "array", "maxItems": 100,
                                                               "items": {"type": "string"},
                                                               "description": "DKIM signing domains seen abusing "
                                                                              "the addresses (added to theirs)"}}},
                "ListingsReply": {"type": "object", "required": ["zone"],
                                  "properties": {"zone": {"type": "string"}, "added": {"type": "integer"},
                                                 "refreshed": {"type": "integer"}, "removed": {"type": "integer"}}},
                "DelistRequestBody": {
                    "type": "object", "required": ["subject", "reason", "email"], "additionalProperties": False,
                    "properties": {
                        "subject": {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT,
                                    "description": "the listed address, CIDR or domain"},
                        "zone": {"type": "string", "description": "default: the first zone"},
                        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON,
                                   "description": "what was wrong and what was fixed"},
                        "email": {"type": "string", "minLength": 3, "maxLength": MAX_EMAIL,
                                  "description": "where the operator answers"}}},
                "DelistRequestReply": {
                    "type": "object", "required": ["id", "state", "subject", "zone", "listed_as", "next"],
                    "properties": {"id": {"type": "integer"}, "state": {"type": "string"},
                                   "subject": {"type": "string"}, "zone": {"type": "string"},
                                   "listed_as": {"type": "object"}, "created_at": {"type": "string"},
                                   "duplicate": {"type": "boolean",
                                                 "description": "the same request was already open: its id"},
                                   "next": {"type": "string", "description": "what happens now"}}},
                "DelistRequest": _DELIST_REQUEST,
                "DelistRequests": {"type": "object", "required": ["state", "requests"],
                                   "properties": {"state": {"type": "string"},
                                                  "requests": {"type": "array", "items": {
                                                      "$ref": "#/components/schemas/DelistRequest"}}}},
                "DelistCloseBody": {
                    "type": "object", "required": ["resolution", "note"], "additionalProperties": False,
                    "properties": {"resolution": {"type": "string", "enum": list(RESOLUTIONS),
                                                  "description": "delisted removes the listing now (audited)"},
                                   "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE,
                                            "description": "the operator's answer to the requester"}}},
                "DelistClosed": {"type": "object", "required": ["request", "removed"],
                                 "properties": {"request": {"$ref": "#/components/schemas/DelistRequest"},
                                                "removed": {"type": "array", "items": {"type": "string"}}}},
                "KeyBody": {"type": "object", "required": ["name"], "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$",
                                         "description": "who holds it"},
                                "quota": {"type": "string", "nullable": True, "pattern": r"^\d+/(\d+[smhdw]|second|minute|hour|day|week)$",
                                          "description": "queries per period, such as 100000/day or 1000/10s"},
                                "zones": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                          "description": "zone origins it opens (default: every keyed zone)"}}},
                "Key": {"type": "object", "required": ["id", "name", "hint", "created_at"],
                        "properties": {
                            "id": {"type": "integer"}, "name": {"type": "string"},
                            "hint": {"type": "string", "description": "the key's first 4 characters"},
                            "zones": {"type": "array", "nullable": True, "items": {"type": "string"}},
                            "quota": {"type": "string", "nullable": True}, "period": {"type": "integer"},
                            "used": {"type": "integer", "description": "queries in the quota's period in force"},
                            "total": {"type": "integer"},
                            "created_at": {"type": "string"}, "created_by": {"type": "string"},
                            "revoked_at": {"type": "string", "nullable": True}, "revoked_by": {"type": "string", "nullable": True}}},
                "KeyCreated": {"type": "object", "required": ["key", "secret"], "properties": {
                    "key": {"$ref": "#/components/schemas/Key"},
                    "secret": {"type": "string", "pattern": "^[a-z2-7]{26}$",
                               "description": "the key, shown this once: 2.0.0.127.KEY.bl.example"}}},
            },
        },
        "paths": {
            "/v1/lookup/{subject}": {"get": {
                "summary": "The decision and its trace for an address or domain (as rbl explain --json)",
                "parameters": [{"name": "subject", "in": "path", "required": True, "schema": {"type": "string"},
                                "example": "3.5.140.7"}],
                "responses": {"200": {"description": "the decision", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Lookup"}}}}, **_errors(400, 503)},
            }},
            "/v1/evidence": {"post": {
                "summary": "Remediation evidence from a vendor for subjects in its own ranges; all items or none",
                "security": bearer,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "maxLength": 200}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EvidenceBody"}, "example": EVIDENCE_EXAMPLE}}},
                "responses": {"202": {"description": "stored", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EvidenceReply"}}}},
                    **_errors(400, 401, 403, 409, 413)},
            }},
            "/v1/listings": {
                "post": {"summary": "The operator lists subjects (all or none)", "security": bearer,
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/ListingsBody"}, "example": LISTINGS_EXAMPLE}}},
                         "responses": {"201": {"description": "listed", "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/ListingsReply"}}}}, **_errors(400, 401, 403)}},
                "delete": {"summary": "The operator removes listings (all or none)", "security": bearer,
                           "requestBody": {"required": True, "content": {"application/json": {
                               "schema": {"$ref": "#/components/schemas/ListingsBody"},
                               "example": {"subjects": ["192.0.2.44"]}}}},
                           "responses": {"200": {"description": "removed", "content": {"application/json": {
                               "schema": {"$ref": "#/components/schemas/ListingsReply"}}}},
                               **_errors(400, 401, 403, 404)}},
            },
            "/v1/vendors/{vendor}": {"get": {
                "summary": "A vendor's record: score, tier, the numbers behind them, open cases, listings",
                "security": bearer,
                "parameters": [{"name": "vendor", "in": "path", "required": True, "schema": {"type": "string"},
                                "example": "aws"}],
                "responses": {"200": {"description": "the record", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Vendor"}}}}, **_errors(401, 403, 404)},
            }},
            "/v1/vendors/{vendor}/events": {"get": {
                "summary": "A vendor's notices (listed, escalated, remediated, overdue, tier, delisted) after an "
                           "id, oldest first; with wait, a long poll answering as soon as one arrives",
                "security": bearer,
                "parameters": [
                    {"name": "vendor", "in": "path", "required": True, "schema": {"type": "string"}, "example": "aws"},
                    {"name": "after", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0}},
                    {"name": "wait", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0, "maximum": 60, "default": 0},
                     "description": "seconds to wait for an event when there is none after `after`"},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
                "responses": {"200": {"description": "events, oldest first (none: the wait ran out)", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/VendorEvents"}}}},
                    **_errors(400, 401, 403, 404)},
            }},
            "/v1/delist-requests": {
                "post": {"summary": "Anyone asks the operator to review a listing: rate-limited per client, "
                                    "queued, never delists by itself",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/DelistRequestBody"},
                             "example": DELIST_EXAMPLE}}},
                         "responses": {"202": {"description": "queued for the operator", "content": {
                             "application/json": {"schema": {"$ref": "#/components/schemas/DelistRequestReply"}}}},
                             **_errors(400, 404, 429, 503, words={404: "the subject is not listed in that zone"})}},
                "get": {"summary": "The operator's queue of delisting requests", "security": bearer,
                        "parameters": [{"name": "state", "in": "query", "required": False,
                                        "schema": {"type": "string", "enum": ["open", "closed", "all"],
                                                   "default": "open"}}],
                        "responses": {"200": {"description": "requests, oldest first", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/DelistRequests"}}}},
                            **_errors(400, 401, 403)}},
            },
            "/v1/delist-requests/{id}/close": {"post": {
                "summary": "The operator closes a request: delisted (its listing is removed, audited) or rejected",
                "security": bearer,
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}, "example": 1}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DelistCloseBody"}, "example": DELIST_CLOSE_EXAMPLE}}},
                "responses": {"200": {"description": "closed", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DelistClosed"}}}},
                    **_errors(400, 401, 403, 404, 409, words={
                        409: "already closed, or a wider listing would still list the subject"})},
            }},
            "/v1/keys": {
                "get": {
                    "summary": "The access keys of keyed zones, with their usage (never their text)",
                    "security": bearer,
                    "responses": {"200": {"description": "every key, revoked ones too", "content": {
                        "application/json": {"schema": {"type": "object", "required": ["keys"], "properties": {
                            "keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}}}}}}},
                        **_errors(401, 403)},
                },
                "post": {
                    "summary": "Create an access key; its text is in this reply only",
                    "security": bearer,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/KeyBody"},
                        "example": {"name": "acme-mail", "quota": "100000/day", "zones": ["bl.example"]}}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/KeyCreated"}}}},
                        **_errors(400, 401, 403, 409, words={409: "a key of that name exists"})},
                },
            },
            "/v1/keys/{name}/revoke": {"post": {
                "summary": "Revoke an access key: answered 127.255.255.254 within a second",
                "security": bearer,
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                                "example": "acme-mail"}],
                "responses": {"200": {"description": "revoked", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["key"], "properties": {
                        "key": {"$ref": "#/components/schemas/Key"}}}}}},
                    **_errors(401, 403, 404, 409, words={409: "already revoked"})},
            }},
            "/metrics": {"get": {
                "summary": "Counters in the Prometheus text format: DNS queries by zone, rcode and code; evidence "
                           "accepted and rejected; snapshot serial and compile seconds (the operator's token)",
                "security": bearer,
                "responses": {"200": {"description": "Prometheus text exposition format 0.0.4", "content": {
                    "text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}}},
                    **_errors(401, 403)},
            }},
            "/openapi.json": {"get": {"summary": "This description",
                                      "responses": {"200": {"description": "OpenAPI 3",
                                                            "content": {"application/json": {}}}}}},
        },
    }
