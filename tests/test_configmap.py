"""The ingress-nginx ConfigMap (--nginx-configmap): the catalogue of its keys, reading a version,
the defaults it gives annotations, the settings it replaces, snippets, refusal and the last good
version kept, and ``ingressd check`` with it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from twisted.internet.task import Clock

from harness import ingress, service

from ingressd.compat import configmap_catalogue
from ingressd.compat.catalogue import HARMLESS, IMPLEMENTED, PARTIAL
from ingressd.compat.check import main, server_settings_from
from ingressd.config.nginx_configmap import read_configmap
from ingressd.config.reloader import Reloader, State
from ingressd.config.store import ObjectStore
from ingressd.plugin_manager import load_plugins
from ingressd.testing import restore_plugin_configuration

# a folder that is in mutmut's copy of the checkout too (tests/mutation.py): any manifests will do
HERE = Path(__file__).resolve().parent

ROOT = Path(__file__).resolve().parent.parent
N = "nginx.ingress.kubernetes.io/"
NAME = "ingress-nginx/ingress-nginx-controller"


@pytest.fixture(autouse=True)
def _plugins_as_they_were():
    yield
    restore_plugin_configuration()


def configmap(data, name="ingress-nginx-controller", namespace="ingress-nginx"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": dict(data)}


WORLD = [*service("web", [("http", 80, 8080)])]


def app(name="app", annotations=None):
    return ingress(name, [("app.example", [("/", "Prefix", "web", 80)])], annotations=annotations)


# -- the catalogue ----------------------------------------------------------------------------


def test_the_catalogue_has_every_documented_key_with_its_default():
    assert len(configmap_catalogue.KEYS) == 192 + 6  # and the global rate limiter's, removed in its last releases
    assert configmap_catalogue.lookup("proxy-body-size").default == "1m"
    assert configmap_catalogue.lookup("hsts-max-age").default == "31536000"
    assert configmap_catalogue.lookup("worker-processes").default is None  # the machine's CPUs
    assert configmap_catalogue.lookup("log-format-upstream").default.startswith("$remote_addr - $remote_user")


def test_every_mapping_names_a_declared_annotation_or_option():
    plugins = load_plugins()
    annotations = {a.name for a in plugins.annotations}
    from ingressd.config.nginx_configmap import CORE_SETTINGS

    options = {o.name for o in plugins.options} | set(CORE_SETTINGS)
    from ingressd.tap import CORE_FLAGS, CORE_PARAMETERS

    core = {o[0] for o in CORE_PARAMETERS} | {f[0] for f in CORE_FLAGS}
    for key in configmap_catalogue.KEYS.values():
        if key.target is None:
            continue
        how, name = key.target
        assert key.status in (IMPLEMENTED, PARTIAL), key
        assert name in {"annotation": annotations, "setting": options, "option": core}[how], key


def test_the_key_table_in_migrating_md_is_generated_from_the_catalogue():
    text = (ROOT / "docs" / "migrating.md").read_text(encoding="utf-8")
    assert configmap_catalogue.BEGIN + configmap_catalogue.markdown_table() + configmap_catalogue.END in text


def test_the_catalogue_matches_ingress_nginx_documentation():
    """Every key ingress-nginx's configmap.md documents (a copy: tests/fixtures/ingress-nginx-docs), and no other."""
    doc = (Path(__file__).parent / "fixtures" / "ingress-nginx-docs" / "configmap.md").read_text(encoding="utf-8")
    names = {line.split("]")[0][3:] for line in doc.splitlines() if line.startswith("| [")}
    assert names | configmap_catalogue.REMOVED_KEYS == set(configmap_catalogue.KEYS)
    assert not names & configmap_catalogue.REMOVED_KEYS


# -- reading one version ----------------------------------------------------------------------


def _read(data):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    settings = server_settings_from(())
    return read_configmap(NAME, data, plugins.annotations, options, settings)


def test_annotation_defaults_settings_and_defaults_that_ask_nothing():
    reading = _read({"proxy-body-size": "8m", "whitelist-source-range": "10.0.0.0/8", "hsts": "false",
                     "custom-http-errors": "404,503", "proxy-read-timeout": "60", "use-gzip": "false"})
    assert reading.usable and not reading.warnings
    assert dict(reading.annotation_defaults) == {"proxy-body-size": "8m", "allowlist-source-range": "10.0.0.0/8"}
    settings = dict(reading.settings)
    assert settings["hsts"] is False and tuple(settings["custom-http-errors"]) == (404, 503)


def test_unknown_and_harmless_keys_warn_once_each():
    reading = _read({"no-such-key": "1", "ssl-session-ticket-key": "c2VjcmV0", "worker-processes": "3"})
    assert reading.usable
    text = "\n".join(reading.warnings)
    assert "no-such-key is not an ingress-nginx ConfigMap key" in text
    assert "ssl-session-ticket-key is not supported" in text
    assert "worker-processes: '3' needs a restart" in text and "--workers" in text
    assert len(reading.warnings) == 3


@pytest.mark.parametrize("data, words", [
    ({"enable-owasp-modsecurity-crs": "true"}, "enable-owasp-modsecurity-crs is not supported"),
    ({"enable-modsecurity": "true"}, "let in clients it keeps out"),
    ({"http-snippet": "more_set_headers x;"}, "never supported"),
    ({"proxy-body-size": "lots"}, "proxy-body-size"),
    ({"annotations-risk-level": "Medium"}, "Medium is not supported"),
    ({"annotations-risk-level": "Extreme"}, "is not one of"),
    ({"allow-snippet-annotations": "perhaps"}, "allow-snippet-annotations"),
])
def test_a_key_whose_absence_would_widen_access_or_a_bad_value_refuses_the_configmap(data, words):
    reading = _read(data)
    assert not reading.usable
    assert words in "\n".join(reading.refusals)


def test_default_values_of_unsupported_keys_ask_for_nothing():
    reading = _read({"no-auth-locations": "/.well-known/acme-challenge", "enable-modsecurity": "false", "use-geoip": "true", "hsts": "true"})
    assert reading.usable and not reading.warnings


@pytest.mark.parametrize("data, words", [
    ({"log-format-upstream": "$remote_addr $bogus"}, "--log-format-upstream: unknown log variable $bogus"),
    ({"log-format-upstream": "it's"}, "--log-format-upstream: a ' that is not escaped"),
    ({"proxy-real-ip-cidr": "10.0.0.0/8,nowhere"}, "'nowhere' is not an address"),
    ({"use-forwarded-headers": "maybe"}, "expected true or false"),
    ({"proxy-protocol-header-timeout": "5 parsecs"}, "a duration such as 5s"),
    ({"forwarded-for-header": "X Forwarded"}, "is not a header name"),
])
def test_a_client_ip_or_log_value_that_does_not_parse_refuses_the_configmap(data, words):
    reading = _read(data)
    assert not reading.usable and words in "\n".join(reading.refusals), reading.refusals


def test_the_client_ip_and_log_keys_become_settings_read_as_ingress_nginx_writes_them():
    reading = _read({"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8, 192.168.0.0/16",
                     "use-proxy-protocol": "true", "proxy-protocol-header-timeout": "2s",
                     "generate-request-id": "false", "log-format-upstream": '$remote_addr \\"$request\\"',
                     "skip-access-log-urls": "/healthz", "disable-access-log": "false"})
    assert reading.usable, reading.refusals
    assert dict(reading.settings) == {
        "use-forwarded-headers": True, "proxy-real-ip-cidr": ("10.0.0.0/8", "192.168.0.0/16"), "proxy-protocol": True,
        "proxy-protocol-header-timeout": 2.0, "generate-request-id": False,
        "log-format-upstream": '$remote_addr \\"$request\\"', "skip-access-log-urls": "/healthz"}
    assert not reading.warnings


def test_proxy_real_ip_cidr_beside_another_trusted_proxies_option_is_refused():
    plugins = load_plugins()
    settings = server_settings_from(["--trusted-proxies", "10.0.0.0/8"])
    options = {option.name: option.coerce for option in plugins.options}
    other = read_configmap(NAME, {"proxy-real-ip-cidr": "192.168.0.0/16"}, plugins.annotations, options, settings)
    assert "--trusted-proxies is --use-forwarded-headers with --proxy-real-ip-cidr" in "\n".join(other.refusals)
    same = read_configmap(NAME, {"proxy-real-ip-cidr": "10.0.0.0/8"}, plugins.annotations, options, settings)
    assert same.usable


def test_tls_keys_are_live_settings_not_restarts():
    # ssl-protocols & co. apply live (tests/test_configmap_tls.py): never "needs a restart".
    reading = _read({"ssl-protocols": "TLSv1.3", "ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256",
                     "ssl-session-timeout": "1h", "ssl-session-cache": "false"})
    assert reading.usable and not reading.warnings, reading.warnings
    assert dict(reading.settings) == {"ssl-protocols": ("TLSv1.3",), "ssl-ciphers": "ECDHE-RSA-AES128-GCM-SHA256",
                                      "ssl-session-timeout": 3600, "ssl-session-cache": False}


def test_the_stream_keys_are_live_settings_of_the_tcp_udp_services():
    assert not _read({"proxy-stream-timeout": "600s", "proxy-stream-responses": "1"}).settings
    reading = _read({"proxy-stream-timeout": "30s", "proxy-stream-responses": "2"})
    assert reading.usable and not reading.warnings
    assert dict(reading.settings) == {"proxy-stream-timeout": 30.0, "proxy-stream-responses": 2}


def test_a_missing_configmap_is_refused():
    assert _read(None).refusals == (f"ConfigMap {NAME} (--nginx-configmap) does not exist",)


# -- applied by the reloader ------------------------------------------------------------------


class _Server:
    def __init__(self, *objects, args=("--nginx-configmap", NAME)):
        self.clock = Clock()
        self.store = ObjectStore()
        self.state = State()
        plugins = load_plugins()
        settings = server_settings_from(list(args))
        plugins.configure(settings, self.clock)
        self.reloader = Reloader(self.store, self.state, self.clock, plugins, settings=settings)
        self.objects = list(objects)
        self.put(*objects)
        self.store.set_synced("test")
        self.reloader.rebuild()

    def put(self, *objects):
        for kind in ("Ingress", "Service", "EndpointSlice", "ConfigMap"):
            mine = [o for o in objects if o["kind"] == kind]
            if mine:
                self.store.replace("test", kind, mine)
        self.reloader.rebuild()

    def values(self, host="app.example"):
        route = next(r for r in self.state.config.routes if r.host == host)
        return dict(route.features)

    def entry(self, host="app.example"):
        return self.state.table.match(host, "/")


def test_a_key_stands_in_for_the_annotation_and_the_annotation_wins():
    server = _Server(*WORLD, app(), app("own", {N + "proxy-body-size": "2m"}) | {}, configmap(
        {"proxy-body-size": "8m"}))
    by_ingress = {r.ingress.name: dict(r.features) for r in server.state.config.routes}
    assert by_ingress["app"]["proxy-body-size"] == 8 * 1024 * 1024
    assert by_ingress["own"]["proxy-body-size"] == 2 * 1024 * 1024
    assert server.state.ready


def test_a_refused_change_keeps_the_previous_version_and_says_why():
    server = _Server(*WORLD, app(), configmap({"proxy-body-size": "8m"}))
    generation = server.state.generation
    server.put(configmap({"proxy-body-size": "3m", "limit-conn-zone-variable": "$connection"}))
    assert server.values()["proxy-body-size"] == 8 * 1024 * 1024  # the previous version
    reasons = [str(r) for r in server.state.config.rejections if r.ref.kind == "ConfigMap"]
    assert reasons and "change refused" in reasons[0] and "limit-conn-zone-variable" in reasons[0]
    assert server.state.generation == generation + 1 and server.state.ready
    server.put(configmap({"proxy-body-size": "3m"}))  # fixed: applied, the refusal gone
    assert server.values()["proxy-body-size"] == 3 * 1024 * 1024
    assert not [r for r in server.state.config.rejections if r.ref.kind == "ConfigMap"]


def test_at_start_a_refused_or_missing_configmap_keeps_the_server_not_ready():
    server = _Server(*WORLD, app(), configmap({"enable-modsecurity": "true"}))
    assert not server.state.ready and not server.state.config.routes
    assert "enable-modsecurity" in str(server.state.config.rejections[0])
    server.put(configmap({"enable-modsecurity": "false"}))
    assert server.state.ready and server.state.config.routes
    missing = _Server(*WORLD, app())
    assert not missing.state.ready


def test_a_setting_key_applies_live_to_the_features_built():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "default"},
              "type": "kubernetes.io/tls", "data": {}}
    tls_app = ingress("app", [("app.example", [("/", "Prefix", "web", 80)])],
                      tls=[{"hosts": ["app.example"], "secretName": "tls"}])
    server = _Server(*WORLD, secret, tls_app, configmap({}))
    assert server.reloader.context(server.state.config).settings.get("hsts") is not False
    server.put(configmap({"hsts": "false", "limit-req-status-code": "429"}))
    assert server.state.config.nginx_configmap.settings == (("hsts", False), ("limit-req-status-code", 429))


def test_snippets_are_refused_as_ingress_nginx_s_admission_does():
    snippet = {N + "configuration-snippet": "more_set_headers \"X-A: b\";"}
    server = _Server(*WORLD, app("snip", snippet), configmap({}))
    assert "snippet directives are disabled" in str(server.state.config.rejections[0])
    server.put(configmap({"allow-snippet-annotations": "true"}))  # risk level High: still refused
    assert "Critical" in str(server.state.config.rejections[0])
    server.put(configmap({"allow-snippet-annotations": "true", "annotations-risk-level": "Critical"}))
    assert not server.state.config.rejections
    assert [r.ingress.name for r in server.state.config.routes] == ["snip"]


def test_without_a_configmap_nothing_changes():
    server = _Server(*WORLD, app("snip", {N + "configuration-snippet": "more_set_headers \"X-A: b\";"}), args=())
    assert server.state.ready and not server.state.config.rejections
    assert server.state.config.nginx_configmap is None


# -- ingressd check ----------------------------------------------------------------------------


def _check(*objects, args=()):
    out = io.StringIO()
    status = main(["-", "--output", "json", *args], stdin=io.StringIO(yaml.safe_dump_all(list(objects))), stdout=out)
    return status, json.loads(out.getvalue())


def test_check_reads_the_configmap_from_its_input():
    world = [*WORLD, app(), configmap({"proxy-body-size": "8m", "ssl-session-ticket-key": "c2VjcmV0"})]
    status, report = _check(*world, args=("--configmap", NAME))
    assert status == 0
    assert any("ssl-session-ticket-key" in problem for problem in report["problems"])
    status, report = _check(*WORLD, app(), configmap({"enable-owasp-modsecurity-crs": "true"}),
                            args=("--nginx-configmap", NAME))
    assert status == 1
    assert "enable-owasp-modsecurity-crs" in " ".join(report["ingresses"][0]["reasons"])


def test_the_option_and_its_ingress_nginx_alias():
    from ingressd.tap import Options

    for args in (["--nginx-configmap", NAME], [f"--configmap={NAME}"]):
        options = Options()
        options.parseOptions(["--manifests", str(HERE), *args])
        assert options["nginx-configmap"] == NAME
    with pytest.raises(Exception, match="NAMESPACE/NAME"):
        Options().parseOptions(["--manifests", str(HERE), "--configmap", "just-a-name"])


def test_harmless_default_effects_are_warnings_not_refusals():
    for key in configmap_catalogue.KEYS.values():
        if not key.honoured and key.effect == HARMLESS and key.default is not None:
            reading = _read({key.name: key.default + "x" if key.default else "x"})
            assert reading.usable, key.name


# Each annotation-default key: (the ConfigMap's value, an Ingress's own annotation value).
ANNOTATION_KEYS = {
    "proxy-body-size": ("8m", "2m"), "proxy-connect-timeout": ("7", "9"), "proxy-read-timeout": ("70", "90"),
    "proxy-send-timeout": ("70", "90"), "proxy-buffers-number": ("8", "2"), "proxy-buffer-size": ("8k", "16k"),
    "proxy-buffering": ("on", "off"), "proxy-request-buffering": ("off", "on"),
    "client-body-buffer-size": ("16k", "32k"), "proxy-cookie-path": ("/ /x", "off"),
    "proxy-cookie-domain": ("a.example b.example", "off"), "proxy-next-upstream": ("error timeout http_502", "off"),
    "proxy-next-upstream-timeout": ("5", "7"), "proxy-next-upstream-tries": ("5", "2"),
    "proxy-redirect-from": ("http://a.example/", "off"), "ssl-redirect": ("false", "true"),
    "force-ssl-redirect": ("true", "false"), "limit-rate": ("100", "200"), "limit-rate-after": ("1000", "2000"),
    "load-balance": ("ewma", "round_robin"), "relative-redirects": ("true", "false"),
    "denylist-source-range": ("192.0.2.0/24", "198.51.100.0/24"),
    "whitelist-source-range": ("192.0.2.0/24", "198.51.100.0/24"),
}


def test_the_table_covers_every_annotation_default_key():
    mapped = {k.name for k in configmap_catalogue.KEYS.values() if k.target and k.target[0] == "annotation"}
    assert mapped == set(ANNOTATION_KEYS)


@pytest.mark.parametrize("key", sorted(ANNOTATION_KEYS))
def test_each_annotation_default_key_overrides_the_default_and_the_annotation_overrides_it(key):
    from_configmap, own = ANNOTATION_KEYS[key]
    name = configmap_catalogue.lookup(key).target[1]
    server = _Server(*WORLD, app(), ingress("own", [("own.example", [("/", "Prefix", "web", 80)])],
                                            annotations={N + key: own}), configmap({}))
    built_in = server.values()[name]
    server.put(configmap({key: from_configmap}))
    assert not server.state.config.rejections, server.state.config.rejections
    assert server.values()[name] != built_in
    assert server.values("own.example")[name] != server.values()[name]
    assert server.values("own.example")[name] == _Server(*WORLD, ingress(
        "own", [("own.example", [("/", "Prefix", "web", 80)])], annotations={N + key: own}), configmap(
        {})).values("own.example")[name]


# -- ingress-nginx's controller flags -----------------------------------------------------------


def _options(*args):
    from ingressd.tap import Options

    options = Options()
    options.parseOptions(["--manifests", str(HERE), *args])
    return options


def test_an_ingress_nginx_deployment_s_args_are_accepted():
    # The Helm chart's controller args (the validating webhook's are another part's), as Go writes them.
    options = _options("--publish-service=ingress-nginx/ingress-nginx-controller", "--election-id=ingress-nginx-leader",
                       "--controller-class=k8s.io/ingress-nginx", "--ingress-class=nginx",
                       "--configmap=ingress-nginx/ingress-nginx-controller", "--watch-namespace=apps",
                       "--default-ssl-certificate=ingress-nginx/default-tls", "--enable-ssl-passthrough=true",
                       "--ingress-class-by-name=true", "--metrics-per-host=false", "--http-port=8081",
                       "--https-port=8444", "--healthz-port=10254",
                       "--default-backend-service=ingress-nginx/default-backend",
                       "--publish-status-address=192.0.2.1")
    assert options["publish-service"] == "ingress-nginx/ingress-nginx-controller"
    assert options["election-id"] == "ingress-nginx-leader"
    assert options["controller-class"] == "k8s.io/ingress-nginx"
    assert options["ingress-class"] == "nginx" and options["namespace"] == "apps"
    assert options["nginx-configmap"] == "ingress-nginx/ingress-nginx-controller"
    assert options["default-certificate"] == "ingress-nginx/default-tls"
    assert options["enable-ssl-passthrough"]
    assert "8081" in str(options["http"]) and "8444" in str(options["https"]) and "10254" in str(options["admin"])
    assert not _options("--enable-ssl-passthrough=false")["enable-ssl-passthrough"]


@pytest.mark.parametrize("args, words", [
    (("--watch-namespace-selector=team=a",), "--watch-namespace-selector is not supported"),
    (("--http-port=http",), "expected a port number"),
    (("--enable-ssl-passthrough=maybe",), "not true or false"),
])
def test_flags_that_cannot_be_honoured_are_refused(args, words):
    with pytest.raises(Exception, match=words):
        _options(*args)


def test_controller_class_makes_ingress_nginx_s_ingressclass_ours():
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    def controllers(*args):
        service = IngressdService(settings_from(_options(*args)), load_plugins(), MemoryReactorClock())
        return service.reloader.translate_settings.controllers

    assert controllers("--controller-class=k8s.io/ingress-nginx") == ("ingressd.io/ingress-controller",
                                                                      "k8s.io/ingress-nginx")
    assert controllers() == ("ingressd.io/ingress-controller",)


# -- a ConfigMap from a real Helm installation ----------------------------------------------------

# Keys of the Helm ConfigMap ingressd ignores harmlessly today: each warns, nothing else does.
HELM_EXPECTED_WARNINGS: set[str] = set()


def test_a_helm_installation_s_configmap_loads_with_no_unexpected_warning():
    document = yaml.safe_load((ROOT / "tests" / "fixtures" / "ingress-nginx-helm-configmap.yaml").read_text())
    server = _Server(*WORLD, app(), document)  # every key, the client-IP, log and TLS ones included
    assert server.state.ready, server.state.config.rejections
    warned = {str(w).split(" key ")[1].split()[0].rstrip(":") for w in server.state.config.warnings
              if w.ref.kind == "ConfigMap"}
    assert warned == HELM_EXPECTED_WARNINGS
    values = server.values()
    assert values["proxy-body-size"] == 50 * 1024 * 1024 and values["proxy-read-timeout"] == 120
    settings = dict(server.state.config.nginx_configmap.settings)
    assert settings["hsts-max-age"] == 63072000
    assert settings["use-forwarded-headers"] is True and settings["proxy-real-ip-cidr"] == ("10.0.0.0/8",)
    assert settings["compute-full-forwarded-for"] is True and settings["enable-real-ip"] is True
    assert settings["log-format-escape-json"] is True and settings["log-format-upstream"].startswith('{"time"')
    assert settings["use-gzip"] is True


# -- block-cidrs, block-user-agents, block-referers ------------------------------------------------


def test_the_block_lists_refuse_with_403_before_anything_else():
    from ingressd.testing import PluginHarness  # noqa: F401 (the harness other plugin tests use)
    from ingressd_plugins import block_lists

    agents = block_lists.parse_value_list('~*curl, ~^Bot/, "BadAgent 1.0"')
    assert agents.matches(b"Mozilla/5.0 CURL/8") and agents.matches(b"Bot/2") and agents.matches(b"badagent 1.0")
    assert not agents.matches(b"MyBot/2") and not agents.matches(b"BadAgent 1.01") and not agents.matches(None)
    with pytest.raises(ValueError, match="RE2"):
        block_lists.parse_value_list("~(?<=a)b")

    server = _Server(*WORLD, app(), configmap({"block-cidrs": "192.0.2.0/24", "block-user-agents": "~*curl",
                                               "block-referers": "~evil\\.example"}))
    entry = server.entry()
    feature = next(f for f in entry.features if isinstance(f, block_lists.BlockLists))
    from ingressd import Phase

    assert feature.phase < Phase.REWRITE  # before redirects, limits, allow lists and authentication

    class Request:
        def __init__(self, ip="198.51.100.7", **headers):
            from ingressd.http.headers import Headers

            self.client_ip = ip
            self.headers = Headers([(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()])

    assert feature.request(Request()) is None
    assert feature.request(Request("192.0.2.9")).status == 403
    assert feature.request(Request(user_agent="curl/8")).status == 403
    assert feature.request(Request(referer="https://evil.example/")).status == 403
    assert feature.request(Request(referer="https://good.example/")) is None
    server.put(configmap({}))  # applied live: the lists are gone
    assert not [f for f in server.entry().features if isinstance(f, block_lists.BlockLists)]
    assert not _read({"block-user-agents": "~(unclosed"}).usable


# -- the client-address and access-log settings, live ----------------------------------------------


def test_a_configmap_change_swaps_the_forwarding_policy_and_log_format_and_sighup_keeps_them():
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    argv = ["--manifests", str(HERE), "--nginx-configmap", NAME, "--access-log", "-"]
    service = IngressdService(settings_from(_options(*argv[2:])), load_plugins(), MemoryReactorClock(), argv)
    from ingressd.admin.observability import install  # noqa: F401 (installed by the constructor)

    def put(data):
        service.store.replace("test", "ConfigMap", [configmap(data)])
        service.store.replace("test", "Service", [o for o in WORLD if o["kind"] == "Service"])
        service.store.set_synced("test")
        service.store.set_synced("files")  # the --manifests provider's (not started here)
        service.reloader.rebuild()

    initial = service.proxy.settings.forwarding
    assert not initial.use_forwarded_headers and service.access_log.settings.template.text.startswith("$remote_addr - ")
    put({"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8", "log-format-upstream": "$remote_addr $status"})
    policy = service.proxy.settings.forwarding
    assert policy is not initial and policy.use_forwarded_headers and policy.is_trusted("10.1.2.3")
    assert not policy.is_trusted("192.0.2.1")
    assert service.access_log.settings.template.text == "$remote_addr $status"

    put({"use-forwarded-headers": "true", "proxy-real-ip-cidr": "10.0.0.0/8", "log-format-upstream": "$bogus"})
    assert service.proxy.settings.forwarding is policy  # refused: the previous version keeps serving
    assert service.access_log.settings.template.text == "$remote_addr $status"
    assert any("$bogus" in str(r) for r in service.state.config.rejections)

    put({"use-proxy-protocol": "true", "log-format-upstream": "$remote_addr $status"})
    policy = service.proxy.settings.forwarding
    assert policy.proxy_protocol and not policy.use_forwarded_headers

    service.reload_configuration()  # SIGHUP: the options again, the ConfigMap's values still laid over them
    assert service.proxy.settings.forwarding is policy and service.access_log.settings.template.text == "$remote_addr $status"
    service.argv = argv + ["--use-forwarded-headers"]
    service.reload_configuration()
    after = service.proxy.settings.forwarding
    assert after.use_forwarded_headers and after.proxy_protocol

    put({})  # the keys gone: the options alone (the flag given on SIGHUP stays)
    policy = service.proxy.settings.forwarding
    assert policy.use_forwarded_headers and not policy.proxy_protocol
    assert service.access_log.settings.template.text.startswith("$remote_addr - $remote_user")


# -- add-headers and proxy-set-headers --------------------------------------------------------------


def _global_headers(server, host="app.example"):
    from ingressd_plugins import global_headers

    return next((f for f in server.entry(host).features if isinstance(f, global_headers.GlobalHeaders)), None)


def test_add_headers_and_proxy_set_headers_read_the_configmaps_they_name_live():
    add = configmap({"X-Frame-Options": "DENY", "X-Answer": "42"}, name="add", namespace="ingress-nginx")
    proxy = configmap({"X-Tenant": "blue"}, name="proxy", namespace="ingress-nginx")
    server = _Server(*WORLD, app(), add, proxy, configmap(
        {"add-headers": "ingress-nginx/add", "proxy-set-headers": "ingress-nginx/proxy"}))
    assert server.state.ready, server.state.config.rejections
    feature = _global_headers(server)
    response = [(b"x-frame-options", b"SAMEORIGIN"), (b"content-type", b"text/plain")]
    feature.response(None, 200, response)
    assert response == [(b"x-frame-options", b"DENY"), (b"content-type", b"text/plain"), (b"x-answer", b"42")]
    request = [(b"host", b"app.example"), (b"x-tenant", b"red")]
    feature.upstream_request(None, request)
    assert request == [(b"host", b"app.example"), (b"x-tenant", b"blue")]

    # the referenced ConfigMap changes: applied live, the controller ConfigMap unchanged
    controller = configmap({"add-headers": "ingress-nginx/add", "proxy-set-headers": "ingress-nginx/proxy"})
    server.put(configmap({"X-Answer": "43"}, name="add", namespace="ingress-nginx"), proxy, controller)
    response = []
    _global_headers(server).response(None, 200, response)
    assert response == [(b"x-answer", b"43")]
    server.put(configmap({}), add, proxy)  # the keys removed: no headers any more
    assert _global_headers(server) is None


def test_an_ingress_s_own_header_annotations_win_for_the_names_they_set():
    add = configmap({"X-Frame-Options": "DENY", "X-Other": "1"}, name="add", namespace="ingress-nginx")
    proxy = configmap({"X-Tenant": "blue", "X-Zone": "a"}, name="proxy", namespace="ingress-nginx")
    own = app("own", {"ingressd.io/response-headers": "X-Frame-Options: SAMEORIGIN",
                      "ingressd.io/request-headers": "X-Tenant: green"})
    own["spec"]["rules"][0]["host"] = "own.example"
    server = _Server(*WORLD, own, add, proxy, configmap(
        {"add-headers": "ingress-nginx/add", "proxy-set-headers": "ingress-nginx/proxy"}))
    feature = _global_headers(server, "own.example")
    response, request = [], []
    feature.response(None, 200, response)
    feature.upstream_request(None, request)
    assert response == [(b"x-other", b"1")] and request == [(b"x-zone", b"a")]


@pytest.mark.parametrize("key, data, words", [
    ("add-headers", None, "does not exist"),
    ("add-headers", {"Transfer-Encoding": "chunked"}, "hop-by-hop"),
    ("add-headers", {"Server": "nginx"}, "written by ingressd"),
    ("add-headers", {"X-A": "a\r\nX-B: b"}, "control character"),
    ("add-headers", {"X-A": "$upstream_addr"}, "not a variable"),
    ("add-headers", {"Bad Name": "x"}, "not a valid header name"),
    ("proxy-set-headers", {"X-Forwarded-For": "1.2.3.4"}, "set by ingressd"),
    ("proxy-set-headers", {"Host": "other.example"}, "set by ingressd"),
])
def test_a_header_ingressd_would_not_send_refuses_the_configmap(key, data, words):
    objects = [configmap(data, name="hdrs", namespace="ingress-nginx")] if data is not None else []
    server = _Server(*WORLD, app(), *objects, configmap({key: "ingress-nginx/hdrs"}))
    assert not server.state.ready
    assert words in str(server.state.config.rejections[0]) and key in str(server.state.config.rejections[0])


def test_a_header_value_may_use_the_variables_ingressd_substitutes():
    add = configmap({"X-Served-For": "$host"}, name="add", namespace="ingress-nginx")
    server = _Server(*WORLD, app(), add, configmap({"add-headers": "ingress-nginx/add"}))

    class Exchange:
        host = "app.example"

    response = []
    _global_headers(server).response(Exchange(), 200, response)
    assert response == [(b"x-served-for", b"app.example")]


# -- hide-headers -----------------------------------------------------------------------------------


def test_hide_headers_removes_the_backend_s_headers_first_and_live():
    from ingressd import Phase
    from ingressd_plugins import global_headers

    assert dict(_read({"hide-headers": " X-Powered-By ,X-AspNet-Version,"}).settings)["hide-headers"] == (
        "x-aspnet-version", "x-powered-by")
    assert "hop-by-hop" in _read({"hide-headers": "X-Powered-By, Transfer-Encoding"}).refusals[0]

    add = configmap({"X-Powered-By": "ingressd"}, name="add", namespace="ingress-nginx")
    server = _Server(*WORLD, app(), add, configmap({"hide-headers": "X-Powered-By, X-Version"}))
    hidden = [f for f in server.entry().features if isinstance(f, global_headers.HiddenHeaders)]
    assert len(hidden) == 1 and hidden[0].phase < Phase.REWRITE  # before any feature sets its own headers

    class Exchange:
        def __init__(self, upstream_status):
            self.upstream_status = upstream_status

    backend = [(b"x-powered-by", b"PHP"), (b"x-version", b"1"), (b"content-type", b"text/html")]
    hidden[0].response(Exchange(200), 200, backend)
    assert backend == [(b"content-type", b"text/html")]
    own = [(b"x-version", b"ingressd")]  # an answer ingressd made itself: left alone
    hidden[0].response(Exchange(None), 503, own)
    assert own == [(b"x-version", b"ingressd")]

    # with add-headers setting a hidden name, the answer has add-headers' value (hidden first, then set)
    server.put(add, configmap({"hide-headers": "X-Powered-By", "add-headers": "ingress-nginx/add"}))
    headers = [(b"x-powered-by", b"PHP")]
    for feature in server.entry().features:
        if isinstance(feature, (global_headers.HiddenHeaders, global_headers.GlobalHeaders)):
            feature.response(Exchange(200), 200, headers)
    assert headers == [(b"x-powered-by", b"ingressd")]
    server.put(add, configmap({}))
    assert not [f for f in server.entry().features if isinstance(f, global_headers.HiddenHeaders)]


# -- upstream-keepalive-connections, -timeout, -requests ----------------------------------------------


def test_the_upstream_keepalive_keys_are_live_settings_of_the_backend_pools():
    reading = _read({"upstream-keepalive-connections": "16", "upstream-keepalive-timeout": "30s",
                     "upstream-keepalive-requests": "100"})
    assert reading.usable and not reading.warnings
    assert dict(reading.settings) == {"upstream-keepalive-connections": 16, "upstream-keepalive-timeout": 30.0,
                                      "upstream-keepalive-requests": 100}
    assert not _read({"upstream-keepalive-requests": "-1"}).usable
    assert not _read({"upstream-keepalive-timeout": "soon"}).usable


def test_the_pool_closes_a_connection_after_max_requests_and_takes_new_limits():
    from ingressd.proxy.http1_upstream import HTTP1Upstream

    class Transport:
        closed = False

        def loseConnection(self):
            self.closed = True

    class Connection:
        def __init__(self):
            self.connected, self.key, self.served, self.transport = True, ("127.0.0.1", 80), 0, Transport()
            self.opened_at = 0.0

    clock = Clock()
    pool = HTTP1Upstream(clock, max_idle_per_endpoint=4, idle_timeout=60, max_requests=2)
    connection = Connection()
    pool.release(connection)
    assert pool.idle[connection.key] == [connection] and not connection.transport.closed
    pool.idle[connection.key].clear()  # handed out again
    pool.release(connection)  # its second response: closed, not pooled
    assert connection.transport.closed and not pool.idle[connection.key]

    pool.use_limits(1, 60, 0)  # 0: no request limit; one idle connection per endpoint
    first, second = Connection(), Connection()
    for _ in range(3):
        pool.idle[first.key].clear()
        pool.release(first)
    assert not first.transport.closed and first.served == 3
    pool.release(second)  # the pool is full
    assert second.transport.closed
    pool.use_limits(4, 0, 0)  # keep-alive timeout 0: nothing is kept
    third = Connection()
    pool.release(third)
    assert third.transport.closed
    pool.close()


def test_a_configmap_change_gives_the_backend_pools_new_keepalive_limits_live():
    from twisted.internet.testing import MemoryReactorClock

    from ingressd.server import IngressdService
    from ingressd.tap import settings_from

    argv = ["--manifests", str(HERE), "--nginx-configmap", NAME, "--upstream-keepalive-requests", "50"]
    service = IngressdService(settings_from(_options(*argv[2:])), load_plugins(), MemoryReactorClock(), argv)

    def put(data):
        service.store.replace("test", "ConfigMap", [configmap(data)])
        service.store.set_synced("test")
        service.store.set_synced("files")
        service.reloader.rebuild()

    def limits(pool):
        return pool.max_idle, pool.idle_timeout, pool.max_requests

    put({})
    assert limits(service.pool) == limits(service.https_pool) == (320, 60.0, 50)  # the options
    put({"upstream-keepalive-connections": "8", "upstream-keepalive-timeout": "5",
         "upstream-keepalive-requests": "1000"})
    assert limits(service.pool) == limits(service.https_pool) == (8, 5.0, 1000)
    put({})  # the keys gone: the options again
    assert limits(service.pool) == (320, 60.0, 50)


def test_the_client_side_keys_are_live_settings_of_their_options():
    """(tests/test_configmap_http.py: what they change.)"""
    assert not _read({"keep-alive-requests": "1000"}).settings  # ingress-nginx's default asks for nothing
    reading = _read({"keep-alive-requests": "100", "http2-max-concurrent-streams": "64", "use-http2": "false"})
    assert not reading.warnings
    assert dict(reading.settings) == {"keepalive-requests": 100, "http2-max-concurrent-streams": 64, "no-http2": True}
