"""The aiohttp application ``rbl serve --http`` runs beside the DNS workers.

Every error is JSON with a status of 4xx and a message naming the problem,
never an HTML page or a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from rbl.errors import SubjectError
from rbl.policy.explain import explain

log = logging.getLogger("rbl.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (404, 405...) and crashes into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return error(exc.status, exc.reason or "error", path=request.path)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        return error(500, "internal error")


class Api:
    """Routes over the service's store, zones and last good policy."""

    def __init__(self, service):
        self.service = service

    async def lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        service = self.service
        policy = service.policy
        if policy is None or service.current is None:
            return error(503, "no snapshot is being served yet")
        zones = [zone.config for zone in service.current.zones.values()]
        try:
            result = explain(subject, service.reader, zones, policy)
        except SubjectError as exc:
            return error(400, f"subject: {exc}", field="subject")
        result["serial"] = service.current.serial
        return web.Response(text=json.dumps(result, indent=2) + "\n", content_type="application/json")


def make_app(service) -> web.Application:
    """The application; ``service`` has ``reader`` (a store), ``policy`` and ``current``."""
    app = web.Application(middlewares=[json_errors], client_max_size=1 << 20)
    api = Api(service)
    app.router.add_get("/v1/lookup/{subject}", api.lookup)
    return app


async def start_http(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on host:port (0: any free port); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # port 0: the one the kernel chose
    return runner, bound
