"""The twistd drop-in: makes ``twistd ingressd`` exist (options and service live in ingressd.tap)."""

from twisted.application.service import ServiceMaker

ingressd = ServiceMaker(
    "ingressd",
    "ingressd.tap",
    "A Kubernetes ingress server: routes HTTP(S) by Ingress rules to backends",
    "ingressd",
)
