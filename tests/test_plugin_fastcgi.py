"""fastcgi-index and fastcgi-params-configmap (``plugins/fastcgi.py``), as ingress-nginx's parser
(internal/ingress/annotations/fastcgi) and e2e (test/e2e/annotations/fastcgi.go)."""

from __future__ import annotations

import pytest

from ingressd import FastCGI
from ingressd.testing import PluginHarness
from ingressd_plugins import backend_protocol, fastcgi

N = "nginx.ingress.kubernetes.io/"
FCGI = {N + "backend-protocol": "FCGI"}


def config_map(name="fastcgi-configmap", namespace="default", **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def harness(annotations, objects=(), settings=None):
    return PluginHarness([backend_protocol, fastcgi], {**FCGI, **annotations}, objects=list(objects),
                         settings=settings)


def test_backend_protocol_fcgi_alone_is_a_fastcgi_route_with_nginx_params_only():
    with harness({}) as h:
        assert h.rejection is None
        assert h.entry.upstream.protocol == "FCGI"
        assert h.entry.upstream.fastcgi is None
        assert h.request().proxied


def test_the_index_and_the_configmaps_params():
    objects = [config_map(SCRIPT_FILENAME="$fastcgi_script_name", REDIRECT_STATUS="200")]
    with harness({N + "fastcgi-index": "index.php", N + "fastcgi-params-configmap": "fastcgi-configmap"},
                 objects) as h:
        assert h.rejection is None
        assert h.entry.upstream.protocol == "FCGI"
        assert h.entry.upstream.fastcgi == FastCGI.of(
            "index.php", [("REDIRECT_STATUS", "200"), ("SCRIPT_FILENAME", "$fastcgi_script_name")])


def test_namespace_slash_name_in_the_ingress_namespace():
    objects = [config_map(SCRIPT_FILENAME="/var/www/html/index.php")]
    with harness({N + "fastcgi-params-configmap": "default/fastcgi-configmap"}, objects) as h:
        assert h.entry.upstream.fastcgi.params == (("SCRIPT_FILENAME", ((False, "/var/www/html/index.php"),)),)


def test_another_namespace_needs_cross_namespace_resources():
    objects = [config_map(namespace="other", SCRIPT_FILENAME="/x.php")]
    with harness({N + "fastcgi-params-configmap": "other/fastcgi-configmap"}, objects) as h:
        assert "another namespace" in h.rejection
    with harness({N + "fastcgi-params-configmap": "other/fastcgi-configmap"}, objects,
                 {"allow_cross_namespace_resources": True}) as h:
        assert h.entry.upstream.fastcgi.params[0][0] == "SCRIPT_FILENAME"


def test_a_missing_configmap_denies_the_location_with_503():
    with harness({N + "fastcgi-params-configmap": "absent"}) as h:
        assert h.rejection is None
        assert h.request().status == 503


def test_a_change_of_the_configmap_rebuilds_the_route():
    with harness({N + "fastcgi-params-configmap": "fastcgi-configmap"}, [config_map(APP="one")]) as h:
        assert h.entry.upstream.fastcgi.params == (("APP", ((False, "one"),)),)
        h.rebuild([o for o in h.objects if o.get("kind") != "ConfigMap"] + [config_map(APP="two")])
        assert h.entry.upstream.fastcgi.params == (("APP", ((False, "two"),)),)


@pytest.mark.parametrize("index", ["index php", "../index.php", "index.php;", "a/b.php", "$uri"])
def test_an_index_that_is_not_a_file_name_refuses_the_ingress(index):
    with harness({N + "fastcgi-index": index}) as h:
        assert "fastcgi-index" in h.rejection


@pytest.mark.parametrize("data", [
    {"BAD KEY": "x"},
    {"KEY": "has space"},
    {"KEY": "quote\""},
    {"KEY": "semi;colon"},
    {"KEY": "$unknown_variable"},  # nginx -t would refuse it
])
def test_configmap_keys_and_values_ingress_nginx_refuses_refuse_the_ingress(data):
    with harness({N + "fastcgi-params-configmap": "fastcgi-configmap"}, [config_map(**data)]) as h:
        assert "fastcgi-params-configmap" in h.rejection


def test_on_an_http_route_the_settings_change_nothing_else():
    with PluginHarness([backend_protocol, fastcgi], {N + "fastcgi-index": "index.php"}) as h:
        assert h.entry.upstream.protocol == "HTTP"  # fastcgi_index under proxy_pass: no effect
