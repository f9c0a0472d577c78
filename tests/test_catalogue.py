"""The annotation catalogue agrees with ingress-nginx's list, with the built-in plugins and with
docs/migrating.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingressd.compat.catalogue import (
    BEGIN,
    CATALOGUE,
    END,
    CURRENT,
    HARMLESS,
    IMPLEMENTED,
    NOT_NEEDED,
    NOT_YET,
    PARTIAL,
    REFUSED,
    markdown_table,
)
from ingressd.plugin_manager import load_plugins

ROOT = Path(__file__).resolve().parent.parent

# Every annotation of ingress-nginx v1.15.1 (its last release, 2026-03-19): the names in
# docs/user-guide/nginx-configuration/annotations.md and the annotation parsers.
INGRESS_NGINX = """
affinity affinity-canary-behavior affinity-mode allowlist-source-range app-root auth-always-set-cookie
auth-cache-duration auth-cache-key auth-keepalive auth-keepalive-requests auth-keepalive-share-vars
auth-keepalive-timeout auth-method auth-proxy-set-headers auth-realm auth-request-redirect
auth-response-headers auth-secret auth-secret-type auth-signin auth-signin-redirect-param auth-snippet
auth-tls-error-page auth-tls-match-cn auth-tls-pass-certificate-to-upstream auth-tls-secret
auth-tls-verify-client auth-tls-verify-depth auth-type auth-url backend-protocol canary canary-by-cookie
canary-by-header canary-by-header-pattern canary-by-header-value canary-weight canary-weight-total
client-body-buffer-size configuration-snippet connection-proxy-header cors-allow-credentials
cors-allow-headers cors-allow-methods cors-allow-origin cors-expose-headers cors-max-age custom-headers
custom-http-errors default-backend denylist-source-range disable-proxy-intercept-errors enable-access-log
enable-cors enable-global-auth enable-modsecurity enable-opentelemetry enable-owasp-core-rules
enable-rewrite-log fastcgi-index fastcgi-params-configmap force-ssl-redirect from-to-www-redirect
http2-push-preload limit-allowlist limit-burst-multiplier limit-connections limit-rate limit-rate-after
limit-rpm limit-rps limit-whitelist load-balance mirror-host mirror-request-body mirror-target
modsecurity-snippet modsecurity-transaction-id opentelemetry-operation-name
opentelemetry-trust-incoming-span permanent-redirect permanent-redirect-code preserve-trailing-slash
proxy-body-size proxy-buffer-size proxy-buffering proxy-buffers-number proxy-busy-buffers-size
proxy-connect-timeout proxy-cookie-domain proxy-cookie-path proxy-http-version proxy-max-temp-file-size
proxy-next-upstream proxy-next-upstream-timeout proxy-next-upstream-tries proxy-read-timeout
proxy-redirect-from proxy-redirect-to proxy-request-buffering proxy-send-timeout proxy-ssl-ciphers
proxy-ssl-name proxy-ssl-protocols proxy-ssl-secret proxy-ssl-server-name proxy-ssl-verify
proxy-ssl-verify-depth relative-redirects rewrite-target satisfy server-alias server-snippet
service-upstream session-cookie-change-on-failure session-cookie-conditional-samesite-none
session-cookie-domain session-cookie-expires session-cookie-max-age session-cookie-name
session-cookie-path session-cookie-samesite session-cookie-secure ssl-ciphers ssl-passthrough
ssl-prefer-server-ciphers ssl-redirect stream-snippet temporal-redirect temporal-redirect-code
upstream-hash-by upstream-hash-by-subset upstream-hash-by-subset-size upstream-vhost
use-port-in-redirects use-regex whitelist-source-range x-forwarded-prefix
""".split()

# Removed from ingress-nginx in earlier releases; old manifests still carry them.
REMOVED = """
add-base-url base-url-scheme enable-influxdb enable-opentracing global-rate-limit
global-rate-limit-ignored-cidrs global-rate-limit-key global-rate-limit-window grpc-backend
influxdb-host influxdb-measurement influxdb-port influxdb-server-name opentracing-trust-incoming-span
secure-backends secure-verify-ca-secret session-cookie-hash upstream-fail-timeout upstream-max-fails
""".split()


def test_every_ingress_nginx_annotation_and_nothing_else():
    assert len(INGRESS_NGINX) == 138
    assert sorted(CURRENT) == sorted(INGRESS_NGINX)
    assert sorted(name for name, entry in CATALOGUE.items() if entry.removed) == sorted(REMOVED)


def test_catalogue_and_built_in_plugins_agree():
    plugins = load_plugins()
    built_in = {name for name, plugin in plugins.manager.list_name_plugin()
                if getattr(plugin, "__name__", "").startswith("ingressd_plugins.")}
    owned = {name for name, owner in plugins.annotation_owners.items() if owner in built_in}
    assert len(built_in) >= 7
    implemented = {name for name, entry in CATALOGUE.items() if entry.status in (IMPLEMENTED, PARTIAL)}
    # ingressd's own annotations (ingressd.io/…) have no ingress-nginx counterpart to catalogue.
    owned -= INGRESSD_ONLY
    assert owned == implemented, (sorted(owned - implemented), sorted(implemented - owned))
    assert not INGRESSD_ONLY & set(CATALOGUE)


# Annotations the built-in plugins add that ingress-nginx never had (documented in docs/plugins.md).
INGRESSD_ONLY = {"request-headers", "remove-request-headers", "response-headers", "remove-response-headers",
                 "limit-scope"}


def test_ingressd_only_annotations_are_documented():
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name in INGRESSD_ONLY:
        assert f"ingressd.io/{name}" in text, name


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_each_entry_is_coherent(name):
    entry = CATALOGUE[name]
    if entry.requires is not None:
        assert entry.requires in CATALOGUE and entry.requires != name
    if entry.status == REFUSED:
        assert name.endswith("-snippet")
    if entry.status in (PARTIAL, NOT_NEEDED):
        assert entry.note, f"{name}: say how it differs or why nothing is needed"
    if not entry.ignorable:
        assert entry.status == NOT_YET and entry.effect != HARMLESS
    if entry.removed:  # not implemented, or ignored by ingress-nginx's last release too
        # (the global-rate-limit family: served again with --redis, ingressd's own way)
        assert entry.status in (NOT_YET, NOT_NEEDED) or name.startswith("global-rate-limit")


def test_docs_table_matches_the_catalogue():
    text = (ROOT / "docs" / "migrating.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "docs/migrating.md has no catalogue markers"
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table == markdown_table(), "regenerate it: python -m ingressd.compat.catalogue --write docs/migrating.md"
