"""``service-upstream: "true"``: requests go to the Service's cluster IP and port, not to its endpoints.

As ingress-nginx (``internal/ingress/annotations/serviceupstream``; ``controller.go``
``createUpstreams`` and ``getServiceClusterEndpoint``): the route's one endpoint is the Service's
``spec.clusterIP`` with the Service port's number (a port named in the Ingress is looked up in
the Service), so kube-proxy or a service mesh picks the pod. Everything that balances over a
route's endpoints (round-robin, ``load-balance: ewma``, ``upstream-hash-by``, affinity, a canary's
choice) then sees that single endpoint, as ingress-nginx's balancers see its one-endpoint upstream.

A Service without a cluster IP (headless, ``clusterIP: None``) keeps its ready endpoints, and an
ExternalName Service its external name, as ingress-nginx falls back (it logs "Failed to determine
a suitable ClusterIP Endpoint"). A value other than Go's booleans rejects the Ingress.

The work is done when routes are built, through the annotation's ``route_backend``: nothing runs
per request.
"""

from __future__ import annotations

import dataclasses

from ingressd import Annotation, hookimpl, parse_bool


def cluster_ip_backend(enabled: bool, backend):
    """``backend`` with the Service's cluster IP and port as its only endpoint when ``enabled`` and
    the Service has one; else ``backend`` itself."""
    if not enabled or backend.cluster_endpoint is None:
        return backend
    return dataclasses.replace(backend, endpoints=(backend.cluster_endpoint,))


@hookimpl
def ingressd_annotations():
    return [Annotation("service-upstream", parse_bool, False,
                       "true: send to the Service's cluster IP and port instead of its endpoints",
                       route_backend=cluster_ip_backend)]
