"""ingressd: a Kubernetes ingress server on Twisted, extended by pluggy plugins.

The names a plugin may import are re-exported here and nowhere else.
"""

from ingressd.features import (
    INGRESSD_PREFIX,
    NGINX_PREFIX,
    Annotation,
    AnnotationError,
    BackendTLS,
    BuildContext,
    ForwardedRequest,
    HostRoute,
    LocalResponse,
    Option,
    PathPatternError,
    Phase,
    RoundRobin,
    UpstreamSettings,
    check_plain_text,
    compile_path,
    re2_reason,
    parse_bool,
    parse_int,
    parse_list,
    parse_size,
    same_for_every_path,
)
from ingressd.plugin_manager import hookimpl
from ingressd.config.values_in_use import values_in_use
from ingressd.proxy.subrequest import SubrequestError, SubResponse, TargetURL, parse_url
from ingressd.tls.client_auth import ClientAuth, ClientAuthError, ClientCertificate, load_client_auth
from ingressd.tls.settings import HostTLS, parse_ciphers
from ingressd.proxy.next_upstream import NextUpstream, parse_conditions as parse_next_upstream
from ingressd.proxy.fastcgi_params import FastCGI, FastCGIParamError
from ingressd import snippets
from ingressd.snippets import SnippetError, parse_snippet
from ingressd.tracing.settings import TracingSettings
from ingressd.tracing.tracer import Tracing

__version__ = "0.1.0"

__all__ = [
    "INGRESSD_PREFIX",
    "NGINX_PREFIX",
    "Annotation",
    "AnnotationError",
    "BackendTLS",
    "BuildContext",
    "FastCGI",
    "FastCGIParamError",
    "ForwardedRequest",
    "ClientAuth",
    "ClientAuthError",
    "ClientCertificate",
    "HostRoute",
    "HostTLS",
    "LocalResponse",
    "NextUpstream",
    "Option",
    "PathPatternError",
    "Phase",
    "RoundRobin",
    "SnippetError",
    "SubResponse",
    "SubrequestError",
    "TargetURL",
    "Tracing",
    "TracingSettings",
    "UpstreamSettings",
    "check_plain_text",
    "compile_path",
    "re2_reason",
    "hookimpl",
    "load_client_auth",
    "parse_bool",
    "parse_ciphers",
    "parse_int",
    "parse_list",
    "parse_next_upstream",
    "parse_size",
    "same_for_every_path",
    "parse_snippet",
    "parse_url",
    "snippets",
    "values_in_use",
]
