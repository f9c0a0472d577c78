"""``fastcgi-index`` and ``fastcgi-params-configmap``: what an FCGI route tells its application.

As ingress-nginx (internal/ingress/annotations/fastcgi; nginx.tmpl's FCGI location):

- ``fastcgi-index``: nginx's ``fastcgi_index``, appended to a URI ending in ``/`` for
  ``$fastcgi_script_name`` (SCRIPT_NAME); one file name (``^[A-Za-z0-9.\\-_]+$``), else the
  Ingress is refused, as ingress-nginx's validation error.
- ``fastcgi-params-configmap``: ``name`` or ``namespace/name`` (another namespace only with
  --allow-cross-namespace-resources) of a ConfigMap whose keys are ``fastcgi_param`` names
  and values nginx text (``$variables`` of ``proxy.fastcgi_params.VARIABLES``); watched: a
  change rebuilds the routes. A key or value outside ingress-nginx's characters, or a variable
  nginx would not know, refuses the Ingress; a missing ConfigMap makes every request of the
  route 503, as ingress-nginx's denied location.

Neither sets the protocol: ``backend-protocol: FCGI`` does (``plugins/backend_protocol.py``);
on another protocol they change nothing, as the nginx directives do nothing under ``proxy_pass``.
"""

from __future__ import annotations

import re

from ingressd import Annotation, AnnotationError, FastCGI, FastCGIParamError, Phase, UpstreamSettings, hookimpl
from ingressd import same_for_every_path

from ._responses import DeniedLocation

_INDEX = re.compile(r"^[A-Za-z0-9.\-_]+$")
_REFERENCE = re.compile(r"^[A-Za-z0-9\-_./]+$")  # ingress-nginx's BasicCharsRegex, what a name needs of it
_VALUE = re.compile(r"^[A-Za-z0-9\-_${}/.]*$")  # ingress-nginx's validFCGIValue
_ANNOTATION = "fastcgi-params-configmap"


def _parse_index(value: str) -> str:
    if not _INDEX.match(value):
        raise AnnotationError(f"{value!r} is not a file name (letters, digits, '.', '-', '_')")
    return value


def _parse_reference(value: str) -> str:
    ref = value.strip()
    if not _REFERENCE.match(ref) or ref.count("/") > 1:
        raise AnnotationError(f"{value!r} is not name or namespace/name of a ConfigMap")
    return ref


class FastCGIParams:
    """The route's FastCGI settings, laid on its upstream settings when its entry is built."""

    phase = Phase.PROXY

    def __init__(self, fastcgi: FastCGI):
        self.upstream = UpstreamSettings(fastcgi=fastcgi)


@hookimpl
def ingressd_annotations():
    return [
        Annotation("fastcgi-index", _parse_index, "", "index file appended to a URI ending in / (FCGI backends)"),
        Annotation(_ANNOTATION, _parse_reference, None,
                   "ConfigMap of fastcgi_param names and values (FCGI backends)", resolve="configmap"),
    ]


@hookimpl
@same_for_every_path
def ingressd_route_features(route, values, context):
    index = values.get("fastcgi-index") or ""
    asked = any(name.rpartition("/")[2] == _ANNOTATION and value.strip() for name, value in route.annotations)
    params = ()
    if asked:
        config_map = values.get(_ANNOTATION)
        if config_map is None:
            return DeniedLocation("the fastcgi-params-configmap does not exist", Phase.PROXY)
        for key, value in config_map.data:
            if not _INDEX.match(key) or not _VALUE.match(value):
                raise AnnotationError(f"{_ANNOTATION}: the ConfigMap's key {key!r} or its value has characters "
                                      "ingress-nginx refuses")
        params = config_map.data
    if not index and not params:
        return None
    try:
        return FastCGIParams(FastCGI.of(index, params))
    except FastCGIParamError as exc:
        raise AnnotationError(f"{_ANNOTATION}: {exc}") from None
