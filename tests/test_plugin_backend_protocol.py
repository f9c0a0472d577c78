"""backend-protocol and proxy-ssl-*: what a route's UpstreamSettings become, as ingress-nginx parses them."""

from __future__ import annotations

import pytest

import certs
from ingressd import BackendTLS
from ingressd.testing import PluginHarness
from ingressd_plugins import backend_protocol

N = "nginx.ingress.kubernetes.io/"


@pytest.fixture(scope="module")
def ca():
    return certs.make_ca()


def upstream(annotations, secrets=None):
    with PluginHarness([backend_protocol], {N + k: v for k, v in annotations.items()}, secrets=secrets) as h:
        assert h.rejection is None, h.rejection
        return h.entry.upstream, h


@pytest.mark.parametrize("value, protocol", [("HTTPS", "HTTPS"), ("https", "HTTPS"), (" Auto_Http ", "AUTO_HTTP"),
                                             ("HTTP", "HTTP"), ("h2c", "HTTP"), ("", "HTTP")])
def test_the_protocol_any_case_and_unknown_values_are_http(value, protocol):
    assert upstream({"backend-protocol": value})[0].protocol == protocol


def test_without_proxy_ssl_secret_the_other_proxy_ssl_annotations_do_nothing():
    settings, _ = upstream({"backend-protocol": "HTTPS", "proxy-ssl-verify": "on", "proxy-ssl-server-name": "on",
                            "proxy-ssl-name": "x.test"})
    assert settings.tls is None  # nginx's defaults: no verification, no SNI


def test_with_the_secret_the_settings_as_ingress_nginx_reads_them(ca):
    secret = {"ca.crt": ca.cert_pem}
    settings, _ = upstream({"backend-protocol": "HTTPS", "proxy-ssl-secret": "default/up", "proxy-ssl-verify": "on",
                            "proxy-ssl-verify-depth": "3", "proxy-ssl-name": "api.test",
                            "proxy-ssl-server-name": "on", "proxy-ssl-protocols": "TLSv1.3 TLSv1.2",
                            "proxy-ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256"}, {"up": secret})
    assert settings.tls == BackendTLS(verify=True, verify_name="api.test", verify_depth=3, server_name="api.test",
                                      ca=ca.cert_pem, protocols=("TLSv1.2", "TLSv1.3"),
                                      ciphers="ECDHE-RSA-AES128-GCM-SHA256")


def test_invalid_values_fall_back_to_the_defaults_as_ingress_nginx(ca):
    settings, _ = upstream({"backend-protocol": "HTTPS", "proxy-ssl-secret": "default/up", "proxy-ssl-verify": "yes",
                            "proxy-ssl-verify-depth": "0", "proxy-ssl-name": "bad name",
                            "proxy-ssl-server-name": "true", "proxy-ssl-protocols": "SSLv3",
                            "proxy-ssl-ciphers": "RC4;rm"}, {"up": {"ca.crt": ca.cert_pem}})
    assert settings.tls == BackendTLS(ca=ca.cert_pem, protocols=("TLSv1.2",))


def test_a_secret_without_ca_or_missing_denies_every_request(ca):
    for secrets in ({"up": {"tls.crt": ca.cert_pem}}, None):
        with PluginHarness([backend_protocol], {N + "backend-protocol": "HTTPS",
                                                N + "proxy-ssl-secret": "default/up"}, secrets=secrets) as h:
            assert h.request().status == 503


def test_the_secret_must_be_namespace_slash_name():
    with PluginHarness([backend_protocol], {N + "proxy-ssl-secret": "up"}) as h:
        assert h.rejection is not None and "namespace/name" in h.rejection
