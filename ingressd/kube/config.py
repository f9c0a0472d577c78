"""Client configuration for the Kubernetes API, and the list of every API call ingressd makes.

In a pod (the service-account token is mounted and ``KUBERNETES_SERVICE_HOST`` is set) the
in-cluster configuration is used unless ``--kubeconfig`` names a file; elsewhere
``--kubeconfig FILE``, then ``$KUBECONFIG``, then ``~/.kube/config``.

``API_CALLS`` names every client method the ``ingressd.kube`` modules call, with the RBAC
rule it needs; ``tests/test_k8s_manifests.py`` checks the shipped RBAC against it and that
no module calls a method missing from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from kubernetes import client
from kubernetes.config import incluster_config, kube_config

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ApiCall:
    """One client method, and the RBAC (API group, resource, verb) it needs."""

    method: str
    group: str
    resource: str
    verb: str


API_CALLS: tuple[ApiCall, ...] = (
    # reflector.py: LIST then WATCH (the same method with watch=True)
    ApiCall("list_ingress_for_all_namespaces", "networking.k8s.io", "ingresses", "list"),
    ApiCall("list_ingress_for_all_namespaces", "networking.k8s.io", "ingresses", "watch"),
    ApiCall("list_namespaced_ingress", "networking.k8s.io", "ingresses", "list"),
    ApiCall("list_namespaced_ingress", "networking.k8s.io", "ingresses", "watch"),
    ApiCall("list_ingress_class", "networking.k8s.io", "ingressclasses", "list"),
    ApiCall("list_ingress_class", "networking.k8s.io", "ingressclasses", "watch"),
    ApiCall("list_service_for_all_namespaces", "", "services", "list"),
    ApiCall("list_service_for_all_namespaces", "", "services", "watch"),
    ApiCall("list_namespaced_service", "", "services", "list"),
    ApiCall("list_namespaced_service", "", "services", "watch"),
    ApiCall("list_endpoint_slice_for_all_namespaces", "discovery.k8s.io", "endpointslices", "list"),
    ApiCall("list_endpoint_slice_for_all_namespaces", "discovery.k8s.io", "endpointslices", "watch"),
    ApiCall("list_namespaced_endpoint_slice", "discovery.k8s.io", "endpointslices", "list"),
    ApiCall("list_namespaced_endpoint_slice", "discovery.k8s.io", "endpointslices", "watch"),
    ApiCall("list_secret_for_all_namespaces", "", "secrets", "list"),
    ApiCall("list_secret_for_all_namespaces", "", "secrets", "watch"),
    ApiCall("list_namespaced_secret", "", "secrets", "list"),
    ApiCall("list_namespaced_secret", "", "secrets", "watch"),
    # status.py
    ApiCall("patch_namespaced_ingress_status", "networking.k8s.io", "ingresses/status", "patch"),
    # events.py
    ApiCall("create_namespaced_event", "", "events", "create"),
    ApiCall("patch_namespaced_event", "", "events", "patch"),
    # leader.py
    ApiCall("read_namespaced_lease", "coordination.k8s.io", "leases", "get"),
    ApiCall("create_namespaced_lease", "coordination.k8s.io", "leases", "create"),
    ApiCall("replace_namespaced_lease", "coordination.k8s.io", "leases", "update"),
)


def in_cluster(environ: Mapping[str, str] = os.environ,
               account_dir: str = SERVICE_ACCOUNT_DIR) -> bool:
    """True in a pod: the apiserver's address is in the environment and a token is mounted."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(
        os.path.join(account_dir, "token"))


def load_configuration(kubeconfig: str | None = None, context: str | None = None,
                       environ: Mapping[str, str] = os.environ,
                       account_dir: str = SERVICE_ACCOUNT_DIR) -> client.Configuration:
    """A fresh client Configuration (the global default is never touched).

    urllib3's own retries are turned off (``retries = 0``): every caller in ``ingressd.kube``
    has its own retry loop with backoff, and a silently retried GET hides outages.
    """
    configuration = client.Configuration()
    if kubeconfig:
        kube_config.load_kube_config(config_file=os.path.expanduser(kubeconfig),
                                     context=context, client_configuration=configuration)
    elif in_cluster(environ, account_dir):
        incluster_config.InClusterConfigLoader(
            token_filename=os.path.join(account_dir, "token"),
            cert_filename=os.path.join(account_dir, "ca.crt"),
            environ=environ,
        ).load_and_set(configuration)
    else:
        # KUBECONFIG may be a list of files (merged); the loader handles that and the default.
        path = environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        kube_config.load_kube_config(config_file=path, context=context,
                                     client_configuration=configuration)
    configuration.retries = 0
    return configuration


def pod_namespace(environ: Mapping[str, str] = os.environ,
                  account_dir: str = SERVICE_ACCOUNT_DIR) -> str | None:
    """The namespace this pod runs in: ``$POD_NAMESPACE``, else the mounted namespace file."""
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    try:
        with open(os.path.join(account_dir, "namespace")) as namespace_file:
            return namespace_file.read().strip() or None
    except OSError:
        return None
