"""`python -m tests.read_storm_dummy PORT`: an HTTP server that answers every request 429 at once,
in a process of its own. Pointed at it (STORM_TARGET=dummy), the read-storm test measures what
the storm costs the worker when none of its requests reaches the worker at all: the floor any
in-box read API stands on."""

from __future__ import annotations

import sys

from aiohttp import web


async def refuse(request: web.Request) -> web.Response:
    return web.json_response({"error": "busy"}, status=429)


if __name__ == "__main__":
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
