"""Client configuration for the Kubernetes API, and the list of every API call ingressd makes.

In a pod (the service-account token is mounted and ``KUBERNETES_SERVICE_HOST`` is set) the
in-cluster configuration is used unless ``--kubeconfig`` names a file; elsewhere
``--kubeconfig FILE``, then ``$KUBECONFIG``, then ``~/.kube/config``.

``API_CALLS`` names every request the ``ingressd.providers.kube`` modules make, as the RBAC rule it
needs; ``ingressd.providers.kube.rest`` refuses a request not in it, and ``tests/test_k8s_manifests.py``
checks the shipped RBAC against it and that it lists nothing the modules do not request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from kubernetes import client
from kubernetes.config import incluster_config, kube_config

from ingressd.config.kinds import GATEWAY_GROUP
from ingressd.config.sources import KIND_SPECS

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ApiCall:
    """One kind of request ingressd makes, as the RBAC rule that allows it: API group,
    resource (``plural`` or ``plural/subresource``) and verb."""

    group: str
    resource: str
    verb: str


API_CALLS: tuple[ApiCall, ...] = (
    # reflector.py: LIST then WATCH of every kind the sources of routes read (ingressd.config.sources)
    *(ApiCall(spec.group, spec.plural, verb) for spec in KIND_SPECS if spec.watched for verb in ("list", "watch")),
    # status.py: the status writers, one per kind whose status is written
    *(ApiCall(spec.group, f"{spec.plural}/status", "patch") for spec in KIND_SPECS if spec.status),
    # gateway_status.py: a status write refused with 409 Conflict reads the object again
    *(ApiCall(spec.group, spec.plural, "get") for spec in KIND_SPECS if spec.status and spec.group == GATEWAY_GROUP),
    # events.py
    ApiCall("", "events", "create"),
    ApiCall("", "events", "patch"),
    # leader.py
    ApiCall("coordination.k8s.io", "leases", "get"),
    ApiCall("coordination.k8s.io", "leases", "create"),
    ApiCall("coordination.k8s.io", "leases", "update"),
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

    urllib3's own retries are turned off (``retries = 0``): every caller in ``ingressd.providers.kube``
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
