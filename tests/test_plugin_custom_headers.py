"""custom-headers: response headers from a ConfigMap, as ingress-nginx's e2e (annotations/customheaders.go)."""

from __future__ import annotations

import pytest

from ingressd.testing import PluginHarness
from ingressd_plugins import custom_headers

N = "nginx.ingress.kubernetes.io/"
ALLOWED = {"global_allowed_response_headers": "My-Custom-Header,My-Custom-Header-Dollar"}


def config_map(name="custom-headers", namespace="default", **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def harness(annotation="default/custom-headers", data=None, settings=ALLOWED):
    data = {"My-Custom-Header": "42", "My-Custom-Header-Dollar": "$remote_addr"} if data is None else data
    return PluginHarness([custom_headers], {N + "custom-headers": annotation},
                         objects=[config_map(**data)], settings=settings)


def test_the_headers_are_set_on_every_answer_replacing_the_backends():
    with harness() as h:
        response = h.request().response(200, {"My-Custom-Header": "from-backend"})
        assert response.get_all("My-Custom-Header") == ["42"]
        assert response.get("My-Custom-Header-Dollar") == "$remote_addr"  # literal, as ingress-nginx escapes $
        assert h.request().response(502).get("My-Custom-Header") == "42"


@pytest.mark.parametrize("annotation, data, settings", [
    ("default/absent", None, ALLOWED),  # the ConfigMap does not exist
    ("custom-headers", None, ALLOWED),  # a bare name: ingress-nginx looks up the key "custom-headers" and fails
    ("default/custom-headers", None, {}),  # nothing allowed (ingress-nginx's default)
    ("default/custom-headers", {"Bad Header": "1"}, {"global_allowed_response_headers": "Bad Header"}),
    ("default/custom-headers", {"My-Custom-Header": "new\tline"}, ALLOWED),
])
def test_what_ingress_nginx_denies_is_503(annotation, data, settings):
    with harness(annotation, data, settings) as h:
        assert h.rejection is None
        assert h.request().status == 503


def test_a_change_of_the_configmap_rebuilds_the_route():
    with harness() as h:
        h.rebuild([o for o in h.objects if o.get("kind") != "ConfigMap"]
                  + [config_map(**{"My-Custom-Header": "43"})])
        assert h.request().response(200).get("My-Custom-Header") == "43"
