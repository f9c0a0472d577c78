"""Loading the client configuration: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster."""

from __future__ import annotations

import os

from twisted.trial import unittest

from ingressd.providers.kube.config import in_cluster, load_configuration, pod_namespace

try:
    from tests import fakeapi
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import fakeapi


class ConfigurationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.fake = fakeapi.FakeAPIServer(port=1, token="s3cret")  # never started
        self.fake.port = 6443
        self.kubeconfig = self.fake.write_kubeconfig(self.mktemp())
        self.account = self.mktemp()
        os.makedirs(self.account)
        for name, text in (("token", "pod-token"), ("ca.crt", "not a real CA\n"),
                           ("namespace", "ingressd\n")):
            with open(os.path.join(self.account, name), "w") as out:
                out.write(text)
        self.pod_env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}

    @staticmethod
    def bearer(configuration) -> str:
        return configuration.auth_settings()["BearerToken"]["value"].lower()

    def test_explicit_kubeconfig(self):
        configuration = load_configuration(self.kubeconfig, environ={}, account_dir=self.account)
        self.assertEqual(configuration.host, "http://127.0.0.1:6443")
        self.assertEqual(self.bearer(configuration), "bearer s3cret")
        self.assertEqual(configuration.retries, 0)

    def test_kubeconfig_environment_variable(self):
        configuration = load_configuration(environ={"KUBECONFIG": self.kubeconfig},
                                           account_dir=self.mktemp())
        self.assertEqual(configuration.host, "http://127.0.0.1:6443")

    def test_home_kubeconfig(self):
        home = self.mktemp()
        os.makedirs(os.path.join(home, ".kube"))
        os.rename(self.kubeconfig, os.path.join(home, ".kube", "config"))
        self.patch(os, "environ", dict(os.environ, HOME=home))
        configuration = load_configuration(environ={}, account_dir=self.mktemp())
        self.assertEqual(configuration.host, "http://127.0.0.1:6443")

    def test_in_cluster(self):
        self.assertTrue(in_cluster(self.pod_env, self.account))
        configuration = load_configuration(environ=self.pod_env, account_dir=self.account)
        self.assertEqual(configuration.host, "https://10.96.0.1:443")
        self.assertEqual(self.bearer(configuration), "bearer pod-token")
        self.assertEqual(configuration.ssl_ca_cert, os.path.join(self.account, "ca.crt"))

    def test_explicit_kubeconfig_wins_in_a_pod(self):
        configuration = load_configuration(self.kubeconfig, environ=self.pod_env,
                                           account_dir=self.account)
        self.assertEqual(configuration.host, "http://127.0.0.1:6443")

    def test_not_in_cluster_without_token(self):
        self.assertFalse(in_cluster(self.pod_env, self.mktemp()))
        self.assertFalse(in_cluster({}, self.account))

    def test_pod_namespace(self):
        self.assertEqual(pod_namespace({"POD_NAMESPACE": "x"}, self.account), "x")
        self.assertEqual(pod_namespace({}, self.account), "ingressd")
        self.assertIsNone(pod_namespace({}, self.mktemp()))
