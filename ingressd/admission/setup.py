"""``--validating-webhook``: its options checked at start, and its listener added to the server.

ingress-nginx's form of the address (``--validating-webhook=:8443``, ``HOST:PORT``) is taken as
well as a Twisted endpoint string (``tcp:8443:interface=…``) or a bare port.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.python import usage

OPTION = "validating-webhook"
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)$")


def endpoint(value: str) -> str:
    """``:8443`` → ``tcp:8443``; ``10.0.0.1:8443`` → ``tcp:8443:interface=10.0.0.1``; ``[::]:8443``
    → ``tcp6:8443:interface=\\:\\:``; anything else as ``startup.endpoint`` reads it."""
    from ingressd import startup

    text = str(value).strip()
    found = _HOST_PORT.match(text)
    if found and not text.startswith(("tcp", "ssl", "unix")):
        port, host, v6 = found.group("port"), found.group("host"), found.group("v6")
        if v6 is not None:
            text = f"tcp6:{port}:interface={v6.replace(':', chr(92) + ':')}"
        else:
            text = f"tcp:{port}" + (f":interface={host}" if host else "")
    return startup.endpoint(OPTION, text)


def check_options(options) -> None:
    """Twisted ``Options.postOptions``' part for the webhook: the address made an endpoint, the
    certificate and key present and a pair ingressd can serve (UsageError otherwise)."""
    if not options.get(OPTION):
        options[OPTION] = None
        return
    options[OPTION] = endpoint(options[OPTION])
    certificate, key = options.get(f"{OPTION}-certificate"), options.get(f"{OPTION}-key")
    if not certificate or not key:
        raise usage.UsageError(f"--{OPTION} needs --{OPTION}-certificate and --{OPTION}-key (PEM files)")
    from ingressd.admission.certificate import load_context
    from ingressd.tls.certificates import CertificateError

    try:
        load_context(certificate, key)
    except CertificateError as exc:
        raise usage.UsageError(f"--{OPTION}-certificate {certificate}, --{OPTION}-key {key}: {exc}")
    try:
        workers = int(options.get("workers") or 1)
    except (TypeError, ValueError):
        workers = 1  # --workers itself is refused next, with its own message
    if workers > 1 and options.get("worker-id") is None:
        from ingressd.proxy.transport import parse_tcp

        if parse_tcp(options[OPTION]) is None:
            raise usage.UsageError(f"--workers needs a plain tcp: endpoint for --{OPTION}")


def install(service, settings: dict[str, Any], reactor: Any, reuse_port: bool = False):
    """The webhook's listening service for ``service`` (an ``IngressdService``): reviews judged
    against its store's current objects with its reloader's plugins and settings."""
    from ingressd.admission.certificate import ReloadingCertificate
    from ingressd.admission.endpoint import AdmissionHandler, webhook_factory
    from ingressd.admission.judge import Judge
    from ingressd.proxy.transport import listen

    reloader, store = service.reloader, service.store
    judge = Judge(reloader.plugins, reloader.translate_settings, reloader.settings, reloader.upstream,
                  reloader.protocols, configmap_name=reloader.configmap_name)
    handler = AdmissionHandler(lambda review: judge.decide(review, store.snapshot(), store.synced),
                               figures=lambda: judge.last)
    if getattr(service, "metrics", None) is not None:
        service.metrics.attach(admission=handler)  # ingressd_admission_*, nginx_ingress_controller_admission_*
    certificate = ReloadingCertificate(settings[f"{OPTION.replace('-', '_')}_certificate"],
                                       settings[f"{OPTION.replace('-', '_')}_key"])
    factory = webhook_factory(handler, certificate, reactor)
    service.admission = handler
    return listen(settings[OPTION.replace("-", "_")], factory, reactor, reuse_port=reuse_port, option=f"--{OPTION}")
