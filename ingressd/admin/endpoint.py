"""The admin endpoint: health and readiness (and, with observability, metrics and routes)."""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Site


class _Health(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"ok\n"


class _Ready(Resource):
    isLeaf = True

    def __init__(self, state):
        super().__init__()
        self.state = state

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        if self.state.draining:
            request.setResponseCode(503)
            return b"not ready: shutting down\n"
        if self.state.ready:
            for check in self.state.readiness_checks:
                reason = check()
                if reason:
                    request.setResponseCode(503)
                    return b"not ready: %s\n" % reason.encode("utf-8")
            return b"ready\n"
        request.setResponseCode(503)
        return b"not ready: the first configuration is not loaded yet\n"


def admin_site(state, extra: dict[bytes, Resource] | None = None) -> Site:
    root = Resource()
    root.putChild(b"healthz", _Health())
    root.putChild(b"readyz", _Ready(state))
    for name, resource in (extra or {}).items():
        root.putChild(name, resource)
    site = Site(root)
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # probes and scrapes every few seconds are not news
    return site
