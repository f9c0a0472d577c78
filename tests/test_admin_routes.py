"""The admin page and /routes: a certificate that does not cover its host is flagged."""

from datetime import datetime, timezone
from types import SimpleNamespace

from ingressd.admin.routes import render_page, routes_document
from ingressd.config.model import Config, ObjectRef, TLSHost
from ingressd.config.reloader import State
from ingressd.tls.certificates import Certificate

NOT_AFTER = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _certificate(*names):
    return Certificate(source="Secret lab/app-tls", secret=ObjectRef("Secret", "lab", "app-tls"), subject="",
                       names=names, not_before=NOT_AFTER, not_after=NOT_AFTER, fingerprint="")


class Certificates:
    def __init__(self, served):
        self.served = served

    def certificate_for(self, host):
        return self.served[host]

    def expiries(self):
        return {("lab/app-tls", host): NOT_AFTER for host in self.served}


def _state(*hosts):
    state = State()
    ingress = ObjectRef("Ingress", "lab", "app")
    state.config = Config(tls_hosts=tuple(TLSHost(host, ObjectRef("Secret", "lab", "app-tls"), ingress)
                                          for host in hosts))
    return state


def test_a_certificate_that_does_not_cover_its_host_is_flagged():
    app = _certificate("app.test", "*.wild.test")
    state = _state("app.test", "other.test", "x.wild.test", "*.wild.test")
    certificates = Certificates({"app.test": app, "other.test": app, "x.wild.test": app, "*.wild.test": app})
    document = routes_document(state, certificates)
    problems = {item["host"]: item["problem"] for item in document["tls"]}
    assert problems == {
        "app.test": None, "x.wild.test": None, "*.wild.test": None,
        "other.test": "the certificate served (Secret lab/app-tls: app.test, *.wild.test) does not cover other.test",
    }
    page = render_page(document).decode()
    assert page.count("class=bad>the certificate served") == 1 and "does not cover other.test" in page


def test_the_tls_mark_is_text():
    page = render_page({"generation": 1, "ready": True, "last_success": None, "routes": [{
        "host": "app.test", "path": "/", "path_type": "Prefix", "tls": True, "served": True, "annotations": {},
        "ingress": {"namespace": "lab", "name": "app"},
        "backend": {"namespace": "lab", "service": "web", "port": "80", "external_name": None, "endpoints": []},
    }], "default_backend": None, "tls": [], "default_certificate": None, "rejections": [], "warnings": []})
    assert "🔒" not in page.decode() and 'title="served over TLS">TLS</span>' in page.decode()
