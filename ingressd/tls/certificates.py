"""TLS termination, the certificate side: which certificate each TLS connection is served.

``CertificateStore`` turns the TLS hosts and Secrets of a ``Config`` into validated
certificates, once per Secret change (never per handshake), and swaps the host →
certificate map in one assignment. A certificate's OpenSSL context is made the first time a
handshake names its host (as ingress-nginx's dynamic certificates are loaded on first use):
1,000 Secrets cost neither 1,000 contexts' memory nor their set-up time in a rebuild. A
handshake picks its context by SNI: the exact host (case-insensitive), then a one-label
``*.`` wildcard host, then the default certificate (also for clients sending no SNI,
unknown names and hosts whose Secret is unusable).

Wiring it to a listening port::

    store = CertificateStore(default_secret_data_or_None, alpn=False)
    rejections = store.update(config)          # on every new configuration
    tls_factory = TLSMemoryBIOFactory(store.server_options(), False, http_factory)
    reactor.listenTCP(443, tls_factory)

Contexts are never mutated once used (pyOpenSSL 26 refuses), so a changed Secret gets a
brand new ``CertificateOptions``; open connections keep the context they started with.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from operator import itemgetter
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolNegotiationFactory,
)
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions
from twisted.logger import Logger
from zope.interface import implementer

from ingressd.config.model import Config, ObjectRef, Rejection, SecretData
from ingressd.config.window import window
from ingressd.tls.client_auth import ClientAuth, configure_context
from ingressd.tls.ocsp import OCSPStapler, OCSPTarget, ocsp_target
from ingressd.tls.settings import TLSSettings, configure, ecdh_curve_note, openssl_options, versions

_log = Logger()

# Mozilla's "intermediate" configuration (guidelines 5.7) for TLS 1.2; TLS 1.3 suites are
# OpenSSL's defaults (all three are in the intermediate list). The DHE entries only take
# effect with DH parameters, which we do not load, so ECDHE is what gets negotiated.
MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
_CIPHERS = AcceptableCiphers.fromOpenSSLCipherString(MOZILLA_INTERMEDIATE_CIPHERS)

DEFAULT_CERTIFICATE_CN = "ingressd default certificate"
_HTTP11 = b"http/1.1"
_H2 = b"h2"


class CertificateError(ValueError):
    """A Secret's certificate or key that cannot be served; the message says why."""


@dataclass(frozen=True, eq=False)
class Certificate:
    """A validated certificate; its OpenSSL context is built on first use and then kept."""

    source: str  # "Secret ns/name", or "self-signed" for the generated default
    secret: ObjectRef | None
    subject: str
    names: tuple[str, ...]  # DNS names from subjectAltName (the CN when there is none)
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the leaf, hex
    notes: tuple[str, ...] = ()  # non-fatal problems found once (chain order); see notes_at
    pem: tuple[bytes, bytes] = field(default=(b"", b""), repr=False)
    # Makes a context (raises CertificateError when OpenSSL refuses the pair): with sessions
    # that resume (``True``: one host's context) or without (``False``); asking for client
    # certificates as a ``ClientAuth`` says (then sessions never resume); with a host's own
    # ``TLSSettings`` (ssl-ciphers annotations) or, None, the server's.
    make_context: Callable[..., SSL.Context] | None = field(default=None, repr=False, compare=False)
    # Where its OCSP status is asked (enable-ocsp: ``tls.ocsp``); None without responder URL or issuer.
    ocsp: OCSPTarget | None = field(default=None, repr=False, compare=False)
    # {"context": ..., ("host", name): ..., ("client-auth", ClientAuth): ...} once made
    _made: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def context(self) -> SSL.Context | None:
        """The context that resumes no session (connections that started on the default
        context and were switched by SNI); None when it cannot be made (logged once)."""
        return self._context("context", False)

    def context_for(self, host: str, tls: TLSSettings | None = None) -> SSL.Context | None:
        """The context of one TLS host (as configured: ``a.example`` or ``*.example``): its
        own session cache and ticket keys, so a session resumes for that host only; with the
        host's own ``tls`` settings, or the server's (None)."""
        return self._context(("host", host) if tls is None else ("host", host, tls), True, None, tls)

    def asking_context(self, client_auth: ClientAuth, tls: TLSSettings | None = None) -> SSL.Context | None:
        """The context that asks for client certificates under ``client_auth`` (one per policy
        and settings, whatever host: a host's policy is its own; sessions never resume on it)."""
        key = ("client-auth", client_auth) if tls is None else ("client-auth", client_auth, tls)
        return self._context(key, False, client_auth, tls)

    def forget_contexts(self) -> None:
        """Forget every context made (the server's TLS settings changed): the next handshake makes
        its own anew; open connections keep the context they started with."""
        self._made.clear()

    def keep_asking_contexts(self, policies: "set[ClientAuth]", settings: "set[TLSSettings] | None" = None) -> None:
        """Forget the asking contexts of policies no longer served (a rotated CA), and the
        contexts made with host settings no longer served: open connections keep theirs; the
        next handshake of a host makes its own anew."""
        made = self._made
        for key in [key for key in made if isinstance(key, tuple)]:
            if key[0] == "client-auth" and key[1] not in policies:
                del made[key]
            elif len(key) == 3 and key[2] not in (settings or ()):
                del made[key]

    def _context(self, key: Any, resumption: bool, client_auth: ClientAuth | None = None,
                 tls: TLSSettings | None = None) -> SSL.Context | None:
        made = self._made
        if key not in made:
            made[key] = None
            if self.make_context is not None:
                try:
                    made[key] = self.make_context(resumption, client_auth, tls)
                except Exception as exc:  # the default certificate is served instead
                    _log.error("TLS {source}: cannot be served ({error}); serving the default certificate",
                               source=self.source, error=exc)
        return made[key]

    def notes_at(self, now: datetime) -> tuple[str, ...]:
        """The non-fatal problems as of ``now`` (a certificate is reused for as long as its
        Secret is unchanged: whether it is valid yet is a question of the time asked)."""
        if self.not_before > now:
            return (*self.notes, f"the certificate is not valid before {self.not_before:%Y-%m-%d %H:%M:%S} UTC")
        return self.notes

    def covers(self, host: str) -> bool:
        """Whether the certificate's names cover ``host`` (itself maybe ``*.foo.com``)."""
        host = host.lower()
        for name in self.names:
            if name == host:
                return True
            if name.startswith("*.") and not host.startswith("*."):
                _, dot, parent = host.partition(".")
                if dot and parent == name[2:]:
                    return True
        return False


@dataclass(frozen=True)
class _CertificateMap:
    """What handshakes read: swapped as a whole, never changed in place."""

    default: Certificate
    exact: Mapping[str, Certificate | None]  # None: the host's Secret is unusable → default
    wildcard: Mapping[str, Certificate | None]  # "foo.com" for the TLS host "*.foo.com"
    hosts: Mapping[str, Certificate | None]  # every TLS host as written, for expiries()
    # Hosts whose handshakes ask for client certificates (auth-tls), by exact name and by
    # the parent of a ``*.`` wildcard: ``Config.client_auth``.
    auth_exact: Mapping[str, ClientAuth]
    auth_wildcard: Mapping[str, ClientAuth]
    # Hosts with TLS settings of their own (ssl-ciphers annotations), complete (over the
    # server's): ``Config.host_tls``, by exact name and by the parent of a ``*.`` wildcard.
    tls_exact: Mapping[str, TLSSettings] = field(default_factory=lambda: MappingProxyType({}))
    tls_wildcard: Mapping[str, TLSSettings] = field(default_factory=lambda: MappingProxyType({}))
    # The host names served (Ingress rule hosts and TLS hosts), exact and the parents of ``*.`` wildcards:
    # what ssl-reject-handshake lets through.
    names_exact: frozenset[str] = frozenset()
    names_wildcard: frozenset[str] = frozenset()


@implementer(IOpenSSLServerConnectionCreator)
class _ServerConnectionCreator:
    """Starts each connection on its SNI host's own context when the name was read from the
    ClientHello (``ingressd.tls.client_hello``), else on the default context, which resumes
    no session (its SNI callback may still switch the certificate)."""

    def __init__(self, store: CertificateStore) -> None:
        self._store = store

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        name = getattr(tlsProtocol, "server_name_hint", None)
        return SSL.Connection(self._store.context_for_name(name), None)


class CertificateStore:
    """The certificates ingressd serves, by SNI name, rebuilt only when Secrets change.

    ``default_certificate``: the Secret of ``--default-certificate``; when None a
    self-signed ECDSA certificate is generated. An unusable default Secret raises
    ``CertificateError`` here (a start-up error); later changes of that Secret seen in
    ``update`` replace the default, or are rejected while the previous one keeps serving.

    ``alpn``: offer ``h2`` then ``http/1.1`` when true, ``http/1.1`` only when false.

    ALPN contract for the wrapped factory: every context this store builds has the same
    ALPN selection callback (so it applies on the default context and on the per-host
    contexts SNI switches to). Per connection it reads the ``TLSMemoryBIOProtocol`` from
    ``connection.get_app_data()`` and asks the wrapped factory: the factory given to
    ``TLSMemoryBIOFactory`` should provide ``IProtocolNegotiationFactory``, i.e. an
    ``acceptableProtocols()`` method returning the protocols its protocols can speak
    (``[b"h2", b"http/1.1"]`` or ``[b"http/1.1"]``). The protocol chosen is the first of
    the store's list (``h2`` before ``http/1.1``) that both the factory accepts and the
    client offers. A factory without ``acceptableProtocols()`` is taken to speak
    ``http/1.1`` only. No overlap: the handshake completes without ALPN (no alert), and
    the connection's ``negotiatedProtocol`` is None. The wrapped protocol must check
    ``transport.negotiatedProtocol`` to switch to HTTP/2 itself.

    ``now``: the clock for expiry checks (a callable returning an aware datetime).

    Resumption: server session cache and session tickets are on (TLS 1.2 and 1.3). Known
    limit [measured, OpenSSL 3.0]: every connection starts on the default context, and
    OpenSSL looks the session up before the SNI callback switches contexts, so a session
    is keyed to the default context: a client that offers host A's session with SNI host
    B is resumed (and keeps A's certificate), and sessions survive a certificate
    rotation. Mainstream clients only offer a session to the name it was made for. (The
    ClientHello is now read first, ``client_hello``, so connections with a readable SNI
    start on their host's own context.)

    Client certificates (``Config.client_auth``, from the auth_tls plugin): a host with a
    ``ClientAuth`` policy gets a context that asks for a certificate with that policy's CA
    names (``client_auth.configure_context``) and resumes no session; every other host's
    handshake asks for none. The request checks that the policy its host wants is the one
    its connection was verified under (SNI against Host: 421 otherwise).

    TLS settings (``tls.settings``): ``tls`` is the server's (``--ssl-protocols``,
    ``--ssl-ciphers``, ``--ssl-prefer-server-ciphers``), on every context; a host with settings
    of its own (``Config.host_tls``: the ssl-ciphers annotations) gets contexts with them, by
    SNI name, as it does for client certificates (a host without TLS section: the default
    certificate's). A connection whose ClientHello could not be read before OpenSSL (so that
    its SNI switches the context inside the handshake) keeps the default context's cipher list:
    OpenSSL copies a connection's cipher list when it is created. ``use_tls`` replaces the server's
    settings live (the ConfigMap's ssl-* keys, SIGHUP): every context is made anew for new
    handshakes; open connections keep theirs.

    ``rejects`` (``reject_handshake``: ssl-reject-handshake) tells the listener which SNI names to
    refuse before any context is chosen; with ``ocsp`` and ``TLSSettings.ocsp`` (enable-ocsp) the
    served certificates' OCSP responses are fetched (``tls.ocsp``) and stapled by every context.
    """

    def __init__(
        self,
        default_certificate: SecretData | None = None,
        *,
        alpn: bool = False,
        now: Callable[[], datetime] | None = None,
        default_ref: ObjectRef | None = None,
        tls: TLSSettings | None = None,
        ocsp: OCSPStapler | None = None,
    ) -> None:
        """``default_ref`` names the default Secret before its data is known (served
        self-signed until the Secret shows up in a configuration). ``ocsp``: the stapler
        whose responses contexts staple while ``tls.ocsp`` (enable-ocsp) is on."""
        self._ocsp = ocsp
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._tls = tls if tls is not None else TLSSettings()
        _say_ecdh_curve(self._tls)
        self._protocols: tuple[bytes, ...] = (_H2, _HTTP11) if alpn else (_HTTP11,)
        self._default_ref = default_certificate.ref if default_certificate else default_ref
        # The TLS hosts' certificates by (namespace, name), reused while the PEM is the same (the
        # default is the map's: its context differs, it carries the SNI callback).
        self._cache: dict[tuple[str, str], Certificate] = {}
        if default_certificate is not None:
            try:
                default = self._from_secret(default_certificate, self._now(), default=True)
            except CertificateError as exc:
                raise CertificateError(
                    f"default certificate {_secret_label(default_certificate.ref)}: {exc}"
                ) from None
        else:
            default = self._self_signed()
        self._map = _CertificateMap(
            default, MappingProxyType({}), MappingProxyType({}), MappingProxyType({}),
            MappingProxyType({}), MappingProxyType({}),
        )
        self._host_tls: tuple = ()  # the last configuration's Config.host_tls
        # ssl-reject-handshake: refuse handshakes naming no served host (``rejects``); set by the server, live.
        self.reject_handshake = False
        self._creator = _ServerConnectionCreator(self)
        self.warnings: tuple[Rejection, ...] = ()
        self._served = _ServedNames()  # the names served, followed from one configuration to the next
        self._secrets = _SecretsByKey()  # the last configuration's Secrets, followed
        self._walk: _Walk | None = None  # the last walk of the TLS hosts, followed (``_served_hosts``)
        self.walks = 0  # walks of every TLS host made (the others walk the hosts whose Secrets changed)
        self._asked: tuple = ()  # what the certificates' asking contexts were last kept for

    # -- what the server wires in ---------------------------------------------------------

    def server_options(self) -> IOpenSSLServerConnectionCreator:
        """The connection creator for ``TLSMemoryBIOFactory(options, False, factory)``.

        The same object for the store's whole life: it always starts connections on the
        current default context, whose SNI callback reads the current map.
        """
        return self._creator

    @property
    def alpn_protocols(self) -> tuple[bytes, ...]:
        return self._protocols

    # -- configuration --------------------------------------------------------------------

    def update(self, config: Config) -> list[Rejection]:
        """Serve ``config``'s TLS hosts; return what could not be used. Never raises.

        Hosts whose Secret is missing or unusable are served the default certificate.
        Non-fatal findings (a certificate not covering its host, a chain out of order, a
        host claimed by two Secrets) are left in ``self.warnings``.
        """
        try:
            return self._update(config)
        except Exception:  # a bug here must not stop configuration updates
            _log.failure("while building the certificate map; keeping the previous one")
            return [
                Rejection(
                    ObjectRef("Config", "", "tls"),
                    "internal error while building the certificate map; "
                    "the previous certificates are still served",
                )
            ]

    def _update(self, config: Config) -> list[Rejection]:
        now = self._now()
        # (Kept again once this update is made: after an error, the next one walks every host.)
        walk, self._walk = self._walk, None
        changed = self._secrets.follow(config.secrets)
        rejections: list[Rejection] = []
        warnings: list[Rejection] = []

        default = self._map.default
        if self._default_ref is not None:
            data = self._secrets.get(_key(self._default_ref))
            if data is not None:
                try:
                    default = self._certificate(data, now, default=True)
                except CertificateError as exc:
                    rejections.append(
                        Rejection(
                            self._default_ref,
                            f"default certificate: {exc}; the previous one is still served",
                        )
                    )

        walk, placed = self._served_hosts(config, walk, changed, now)
        exact, wildcard, problems = walk.exact, walk.wildcard, walk.problems
        warnings.extend(walk.warnings)

        for (ingress, secret, reason), names in problems.items():
            rejections.append(
                Rejection(
                    ingress,
                    f"TLS {_secret_label(secret)} for {', '.join(names)}: {reason}; "
                    "serving the default certificate",
                )
            )

        auth_exact: dict[str, ClientAuth] = {}
        auth_wildcard: dict[str, ClientAuth] = {}
        for host, auth in config.client_auth:
            host = _host_name(host)
            if host.startswith("*."):
                auth_wildcard.setdefault(host[2:], auth)
            else:  # "" (a rule without host) is never an SNI name: never looked up
                auth_exact.setdefault(host, auth)

        self._host_tls = config.host_tls
        tls_exact, tls_wildcard = _host_settings(config.host_tls, self._tls)

        policies = {*auth_exact.values(), *auth_wildcard.values()}
        in_use = {*tls_exact.values(), *tls_wildcard.values()}
        asked = (default, exact, wildcard, policies, in_use)
        previous = self._asked
        if placed is not None and previous and previous[0] is default and previous[3:] == asked[3:]:
            # Only the hosts whose Secrets changed are served other certificates than at the last
            # update, whose certificates were kept for the same policies and settings: theirs.
            for certificate in placed:
                certificate.keep_asking_contexts(policies, in_use)
        elif not _same_asking(asked, previous):
            # (Skipped when the certificates served and what they may ask with are the last
            # update's: every context made since was made with those; 1,000 walks otherwise.)
            for certificate in {default, *(c for c in (*exact.values(), *wildcard.values()) if c is not None)}:
                certificate.keep_asking_contexts(policies, in_use)
        self._asked = asked

        self.warnings = tuple(dict.fromkeys(warnings))
        # The one assignment handshakes observe.
        self._map = _CertificateMap(
            default,
            MappingProxyType(exact),
            MappingProxyType(wildcard),
            MappingProxyType(walk.hosts),
            MappingProxyType(auth_exact),
            MappingProxyType(auth_wildcard),
            MappingProxyType(tls_exact),
            MappingProxyType(tls_wildcard),
            *self._served.names(config),
        )
        self._track_ocsp()
        self._walk = walk
        return rejections

    def _served_hosts(self, config: Config, walk: "_Walk | None", changed: frozenset | None,
                      now: datetime) -> tuple["_Walk", list | None]:
        """(the walk of ``config``'s TLS hosts, the certificates now served at the hosts whose Secret
        changed or None when every host was walked) from the last walk ``walk``: only the hosts with a
        TLS host whose Secret is in ``changed`` (``_SecretsByKey.follow``) are walked again, when the
        TLS hosts are the same and ``now`` has crossed none of the certificates' validity bounds (their
        notes and expiry are what they were); every host otherwise (1,000 at 10,000 Ingresses), and
        when a host walked again is served by another of its TLS hosts than before (``_walk_changed``)."""
        if (walk is not None and changed is not None and walk.valid_from <= now < walk.valid_until
                and config.tls_hosts == walk.tls_hosts):
            placed = self._walk_changed(walk, changed, now)
            if placed is not None:
                walk.tls_hosts = config.tls_hosts
                return walk, placed
        return self._walk_all(config.tls_hosts, now), None

    def _walk_all(self, tls_hosts: tuple, now: datetime) -> "_Walk":
        self.walks += 1
        walk = _Walk(tls_hosts, now)
        for index, tls_host in enumerate(tls_hosts):
            host = _host_name(tls_host.host)
            if not host:
                continue
            if "*" in host and not (host.startswith("*.") and "*" not in host[2:]):
                walk.reports[index] = ((), ((tls_host.ingress, tls_host.secret,
                                             "only a leading '*.' wildcard is allowed"), host))
                continue
            walk.groups.setdefault(host, []).append(index)
            walk.users.setdefault(_key(tls_host.secret), []).append(index)
        owned = []
        for host, indices in walk.groups.items():
            owner, served, reports = self._walk_host(host, indices, tls_hosts, walk.built, now)
            walk.reports.update(reports)
            if owner is not None:
                walk.owners[host] = owner
                owned.append((owner, host, served))
        owned.sort(key=itemgetter(0))  # each host in the place a walk of the TLS hosts in order gives it
        for _, host, served in owned:
            walk.serve(host, served)
        walk.report()
        walk.bound(walk.built.values(), now)
        self._cache = {key: value for key, value in walk.built.items() if isinstance(value, Certificate)}
        return walk

    def _walk_changed(self, walk: "_Walk", changed: frozenset, now: datetime) -> list | None:
        """Walk again the hosts with a TLS host whose Secret is in ``changed``; the certificates now
        served at them. None (``walk`` is then spoilt) when a host is served by another of its TLS
        hosts than before: the hosts' order in the map, the Secrets built, may differ (a ``covered_only``
        TLS host whose certificate came to cover it or no longer does)."""
        tls_hosts, users = walk.tls_hosts, walk.users
        hosts = {_host_name(tls_hosts[index].host): None
                 for key in changed for index in users.get(key, ())}
        if not hosts:
            return []  # no TLS host uses them: nothing served changes
        built = walk.built
        for key in changed:
            built.pop(key, None)
        walk.exact, walk.wildcard, walk.hosts = dict(walk.exact), dict(walk.wildcard), dict(walk.hosts)
        reports = walk.reports
        placed = []
        moved = False
        for host in hosts:
            indices = walk.groups[host]
            owner, served, found = self._walk_host(host, indices, tls_hosts, built, now)
            if owner != walk.owners.get(host):
                return None
            for index in indices:
                if reports.get(index) != found.get(index):
                    moved = True
                    reports.pop(index, None)
            reports.update(found)
            if owner is not None:
                walk.serve(host, served)
                if served is not None:
                    placed.append(served)
        if moved:
            walk.report()
        fresh = [built[key] for key in changed if key in built]
        walk.bound(fresh, now)
        for key in changed:
            value = built.get(key)
            if isinstance(value, Certificate):
                self._cache[key] = value
            else:
                self._cache.pop(key, None)
        return placed

    def _walk_host(self, host: str, indices: list[int], tls_hosts: tuple, built: dict,
                   now: datetime) -> tuple[int | None, Certificate | None, dict]:
        """(the index of the TLS host that serves ``host`` or None, its certificate or None for the
        default, what its TLS hosts report: index → (warnings, problem or None)) for the TLS hosts at
        ``indices`` (in order), all of them ``host``: the first one wins (one that a plugin added,
        ``covered_only``, only if its certificate is usable and covers the host). ``built``: the
        certificates (or why not) by Secret key, added to as Secrets are first used."""
        owner: int | None = None
        served: Certificate | None = None
        reports: dict[int, tuple] = {}
        for index in indices:
            tls_host = tls_hosts[index]
            if owner is not None:
                if not tls_host.covered_only and tls_hosts[owner].secret != tls_host.secret:
                    reports[index] = ((Rejection(
                        tls_host.ingress,
                        f"TLS host {host} is already served with {_secret_label(tls_hosts[owner].secret)}; "
                        f"{_secret_label(tls_host.secret)} is not used for it",
                    ),), None)
                continue
            key = _key(tls_host.secret)
            if key not in built:
                built[key] = self._usable(key, now)
            result = built[key]
            if tls_host.covered_only and (isinstance(result, CertificateError) or not result.covers(host)):
                continue  # a TLS host an Ingress names wins
            owner = index
            if isinstance(result, CertificateError):
                reports[index] = ((), ((tls_host.ingress, tls_host.secret, str(result)), host))
                continue
            served = result
            found = [Rejection(tls_host.ingress, f"{_secret_label(tls_host.secret)}: {note}")
                     for note in result.notes_at(now)]
            if not result.covers(host):
                found.append(Rejection(
                    tls_host.ingress,
                    f"{_secret_label(tls_host.secret)}: the certificate does not "
                    f"cover {host} (it names {', '.join(result.names) or 'nothing'})",
                ))
            if found:
                reports[index] = (tuple(found), None)
        return owner, served, reports

    def _usable(self, key: tuple[str, str], now: datetime) -> "Certificate | CertificateError":
        """The certificate of the Secret ``key`` (of the configuration being applied), or why not."""
        data = self._secrets.get(key)
        try:
            if data is None:
                raise CertificateError("the Secret does not exist")
            return self._certificate(data, now)
        except CertificateError as exc:
            return exc
        except Exception as exc:  # pyOpenSSL surprises: reject, don't stop
            return CertificateError(f"cannot be used ({exc!r})")

    def use_tls(self, tls: TLSSettings) -> None:
        """Serve new handshakes with the server's TLS settings ``tls`` (a ConfigMap change, SIGHUP):
        every context is made anew (the default one now, the others at their host's next
        handshake), hosts' own settings are laid over ``tls`` again; open connections keep the
        context they started with, so none is dropped. Sessions made before do not resume after."""
        if tls == self._tls:
            return
        current = self._map
        made = [current.default, *self._cache.values(),
                *(c for c in (*current.exact.values(), *current.wildcard.values()) if c is not None)]
        previous = self._tls
        self._tls = tls
        _say_ecdh_curve(tls)
        try:
            fresh = current.default.make_context(False) if current.default.make_context else None
        except Exception:
            self._tls = previous
            raise
        for certificate in {id(c): c for c in made}.values():
            certificate.forget_contexts()
        if fresh is not None:
            current.default._made["context"] = fresh
        tls_exact, tls_wildcard = _host_settings(self._host_tls, tls)
        self._map = dataclasses.replace(current, tls_exact=MappingProxyType(tls_exact),
                                        tls_wildcard=MappingProxyType(tls_wildcard))
        self._track_ocsp()

    def _track_ocsp(self) -> None:
        """The certificates served now are those whose OCSP responses are fetched (none while
        enable-ocsp is off)."""
        if self._ocsp is None:
            return
        current = self._map
        served = [current.default, *(c for c in (*current.exact.values(), *current.wildcard.values()) if c)]
        self._ocsp.track((c.fingerprint, c.ocsp) for c in served if self._tls.ocsp and c.ocsp is not None)

    def rejects(self, server_name: str | None) -> bool:
        """Whether a handshake naming ``server_name`` (None: no SNI) is refused: with
        ``reject_handshake`` on (ssl-reject-handshake), one naming no host an Ingress serves, as
        nginx's ``ssl_reject_handshake`` in ingress-nginx's catch-all server."""
        if not self.reject_handshake:
            return False
        if not server_name:
            return True
        name = server_name.lower().rstrip(".")
        current = self._map
        if name in current.names_exact:
            return False
        _, dot, parent = name.partition(".")
        return not (dot and parent in current.names_wildcard)

    @property
    def tls(self) -> TLSSettings:
        """The server's TLS settings in use."""
        return self._tls

    # -- selection ------------------------------------------------------------------------

    def certificate_for(self, server_name: str | bytes | None) -> Certificate:
        """The certificate a handshake with this SNI name (None: no SNI) is served."""
        return self._lookup(server_name) or self._map.default

    @property
    def default(self) -> Certificate:
        return self._map.default

    def _lookup(self, server_name: str | bytes | None) -> Certificate | None:
        if not server_name:
            return None
        if isinstance(server_name, bytes):
            try:
                server_name = server_name.decode("ascii")
            except UnicodeDecodeError:
                return None
        name = server_name.lower().rstrip(".")
        current = self._map
        if name in current.exact:
            return current.exact[name]
        _, dot, parent = name.partition(".")
        if dot and parent in current.wildcard:
            return current.wildcard[parent]
        return None

    def context_for_name(self, server_name: str | None) -> SSL.Context:
        """The context a connection naming ``server_name`` starts on: the TLS host's own
        (sessions resume for that host only, RFC 6066 §3), or the default context, which
        resumes nothing (no SNI, an unknown name, a host whose context cannot be made)."""
        current = self._map
        if server_name:
            host, certificate = self._host_of(current, server_name)
            client_auth = self._client_auth_of(current, server_name)
            pattern, tls = self._tls_of(current, server_name)
            if client_auth is not None:
                # A host that asks for client certificates: its certificate's context for the
                # policy (the default certificate's, for a host without TLS section).
                context = (certificate or current.default).asking_context(client_auth, tls)
                if context is not None:
                    return context
            elif host is not None or pattern is not None:
                # Sessions are the TLS host's (or, for a host without TLS section but with
                # settings of its own, the configured name's: never one per name asked).
                context = (certificate or current.default).context_for(host or pattern, tls)
                if context is not None:
                    return context
        return current.default.context

    def client_auth_for(self, server_name: str | None) -> ClientAuth | None:
        """The client-certificate policy a handshake naming ``server_name`` is asked under."""
        return self._client_auth_of(self._map, server_name.lower().rstrip(".")) if server_name else None

    @staticmethod
    def _client_auth_of(current: "_CertificateMap", name: str) -> ClientAuth | None:
        auth = current.auth_exact.get(name)
        if auth is None:
            _, dot, parent = name.partition(".")
            if dot:
                auth = current.auth_wildcard.get(parent)
        return auth

    @staticmethod
    def _tls_of(current: "_CertificateMap", name: str) -> tuple[str | None, TLSSettings | None]:
        """(the host as configured, its own TLS settings) for a lower-case SNI name; (None,
        None) when it has none (the server's apply)."""
        tls = current.tls_exact.get(name)
        if tls is not None:
            return name, tls
        _, dot, parent = name.partition(".")
        if dot:
            tls = current.tls_wildcard.get(parent)
            if tls is not None:
                return "*." + parent, tls
        return None, None

    @staticmethod
    def _host_of(current: "_CertificateMap", name: str) -> tuple[str | None, Certificate | None]:
        """(the TLS host as configured, its certificate or None for the default) for a
        lower-case SNI name; (None, None) when no TLS host covers it."""
        if name in current.exact:
            return name, current.exact[name]
        _, dot, parent = name.partition(".")
        if dot and parent in current.wildcard:
            return "*." + parent, current.wildcard[parent]
        return None, None

    def _context_for_server_name(self, server_name: bytes | None) -> SSL.Context | None:
        # Runs inside the ClientHello: a dictionary lookup, nothing else. None keeps the
        # connection on the default context it was created with.
        chosen = self._lookup(server_name)
        return None if chosen is None else chosen.context

    def _select_alpn(self, connection: SSL.Connection, offered: Sequence[bytes]) -> Any:
        tls_protocol = connection.get_app_data()
        factory = getattr(getattr(tls_protocol, "factory", None), "wrappedFactory", None)
        negotiation = IProtocolNegotiationFactory(factory, None)
        speaks = set(negotiation.acceptableProtocols()) if negotiation else {_HTTP11}
        for protocol in self._protocols:
            if protocol in speaks and protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS

    # -- observability --------------------------------------------------------------------

    def expiries(self) -> dict[tuple[str, str], datetime]:
        """notAfter of every certificate served, keyed by (source, host).

        ``source`` is ``"ns/name"`` of the Secret or ``"self-signed"``; ``host`` is the TLS
        host as configured, or ``""`` for the default certificate.
        """
        current = self._map
        facts = {(_source_label(current.default), ""): current.default.not_after}
        for host, served in current.hosts.items():
            if served is not None:
                facts[(_source_label(served), host)] = served.not_after
        return facts

    # -- building -------------------------------------------------------------------------

    def _certificate(self, data: SecretData, now: datetime, default: bool = False) -> Certificate:
        """The Secret's certificate, reused when its PEM bytes did not change."""
        if default:
            cached: Certificate | None = self._map.default if self._map.default.secret == data.ref else None
        else:
            cached = self._cache.get(_key(data.ref))
        pem = (data.get("tls.crt") or b"", data.get("tls.key") or b"")
        if cached is not None and cached.pem == pem:
            _check_not_expired(cached.not_after, now)
            return cached
        return self._from_secret(data, now, default=default)

    def _from_secret(self, data: SecretData, now: datetime, default: bool) -> Certificate:
        crt = data.get("tls.crt")
        key = data.get("tls.key")
        if not crt:
            raise CertificateError("the Secret has no tls.crt")
        if not key:
            raise CertificateError("the Secret has no tls.key")
        leaf, chain, private_key, notes = parse_key_pair(crt, key)
        _check_not_expired(leaf.not_valid_after_utc, now)
        return self._build(
            f"Secret {data.ref.namespace}/{data.ref.name}",
            data.ref,
            leaf,
            chain,
            private_key,
            (crt, key),
            notes,
            default,
        )

    def _self_signed(self) -> Certificate:
        private_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_CERTIFICATE_CN)])
        start = self._now() - timedelta(hours=1)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(private_key, hashes.SHA256())
        )
        return self._build("self-signed", None, leaf, [], private_key, (b"", b""), [], True)

    def _build(
        self,
        source: str,
        secret: ObjectRef | None,
        leaf: x509.Certificate,
        chain: list[x509.Certificate],
        private_key: Any,
        pem: tuple[bytes, bytes],
        notes: list[str],
        default: bool,
    ) -> Certificate:
        def make_context(resumption: bool, client_auth: ClientAuth | None = None,
                         tls: TLSSettings | None = None) -> SSL.Context:
            settings = tls if tls is not None else self._tls
            oldest, newest = versions(settings)
            options = CertificateOptions(
                privateKey=private_key,
                certificate=leaf,
                extraCertChain=chain,
                insecurelyLowerMinimumTo=oldest,
                lowerMaximumSecurityTo=newest,
                acceptableCiphers=_CIPHERS,
                # Sessions resume only on a host's own context (``Certificate.context_for``).
                enableSessions=resumption and settings.session_cache,
                enableSessionTickets=resumption and settings.session_cache and settings.session_tickets,
                contextForServerName=self._context_for_server_name if default and not resumption else None,
            )
            # Twisted always prefers the server's order; the settings say whether to.
            options._options = openssl_options(options._options, settings)
            try:
                context = options.getContext()
                configure(context, settings)
            except SSL.Error as exc:
                raise CertificateError(f"OpenSSL refused the certificate or key ({exc})") from None
            # Replace Twisted's ALPN callback (not yet used, so still allowed) with ours,
            # which follows the store's configuration as well as the wrapped factory.
            context.set_alpn_select_callback(self._select_alpn)
            if settings.ocsp and self._ocsp is not None and target is not None:
                context.set_ocsp_server_callback(self._ocsp.staple, fingerprint)
            if client_auth is not None:
                configure_context(context, client_auth)
            return context

        fingerprint = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
        target = ocsp_target(leaf, chain)
        certificate = Certificate(
            source=source,
            secret=secret,
            subject=leaf.subject.rfc4514_string(),
            names=_dns_names(leaf),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            fingerprint=fingerprint,
            notes=tuple(notes),
            pem=pem,
            make_context=make_context,
            ocsp=target,
        )
        if default:
            # Every connection starts on the default context: make it now, and refuse a
            # default that OpenSSL will not serve here rather than in a handshake.
            certificate._made["context"] = make_context(False)
        return certificate


class _ServedNames:
    """``_served_names`` followed from one configuration to the next in proportion to what
    changed: the routes' hosts are counted, and only the routes in the window where the new
    configuration's routes differ from the previous one's (``config.window``, by identity) are
    counted in or out; the names are worked out again only when a host came or went or the TLS
    hosts differ (at 10,000 Ingresses a change otherwise reads 30,000 routes)."""

    def __init__(self) -> None:
        self._routes: tuple | None = ()
        self._counts: dict[str, int] = {}  # route host as written → its routes
        self._tls_hosts: tuple | None = None
        self._names: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    def names(self, config: Config) -> tuple[frozenset[str], frozenset[str]]:
        routes, counts = config.routes, self._counts
        # None while counting: if this raised half-way, the next call counts from nothing.
        previous, self._routes = self._routes, None
        if previous is None:
            counts.clear()
            previous = ()
        start, old_end, new_end = window(previous, routes)
        hosts_changed = False
        for route in previous[start:old_end]:
            left = counts[route.host] - 1
            if left:
                counts[route.host] = left
            else:
                del counts[route.host]
                hosts_changed = True
        for route in routes[start:new_end]:
            known = counts.get(route.host, 0)
            counts[route.host] = known + 1
            hosts_changed = hosts_changed or not known
        self._routes = routes
        if hosts_changed or config.tls_hosts != self._tls_hosts:
            self._names = _names_of(counts.keys(), config.tls_hosts)
            self._tls_hosts = config.tls_hosts
        return self._names


def _served_names(config: Config) -> tuple[frozenset[str], frozenset[str]]:
    """(exact host names, parents of ``*.`` wildcard hosts) of the Ingress rules and TLS hosts; a
    rule without host serves no name (ingress-nginx's catch-all server)."""
    # Each distinct name once: 30,000 routes at 10,000 Ingresses share a few thousand hosts.
    return _names_of({route.host for route in config.routes}, config.tls_hosts)


def _names_of(route_hosts: Iterable[str], tls_hosts: Iterable) -> tuple[frozenset[str], frozenset[str]]:
    exact: set[str] = set()
    wildcard: set[str] = set()
    hosts = set(route_hosts)
    hosts.update(tls_host.host for tls_host in tls_hosts)
    for host in hosts:
        host = _host_name(host)
        if host.startswith("*."):
            wildcard.add(host[2:])
        elif host:
            exact.add(host)
    return frozenset(exact), frozenset(wildcard)


def _say_ecdh_curve(tls: TLSSettings) -> None:
    note = ecdh_curve_note(tls)
    if note is not None:
        _log.warn("TLS: {note}", note=note)


def _host_settings(host_tls, base: TLSSettings) -> tuple[dict[str, TLSSettings], dict[str, TLSSettings]]:
    """Hosts' own TLS settings (``Config.host_tls``) laid over the server's ``base``, by exact name
    and by the parent of a ``*.`` wildcard; a host whose settings come out as ``base`` has none."""
    exact: dict[str, TLSSettings] = {}
    wildcard: dict[str, TLSSettings] = {}
    for host, own in host_tls:
        host = _host_name(host)
        settings = own.over(base)
        if settings == base:
            continue  # nothing of its own: the host's usual contexts
        if host.startswith("*."):
            wildcard.setdefault(host[2:], settings)
        else:
            exact.setdefault(host, settings)
    return exact, wildcard


# -- parsing and validating ---------------------------------------------------------------


def parse_key_pair(
    crt: bytes, key: bytes
) -> tuple[x509.Certificate, list[x509.Certificate], Any, list[str]]:
    """Leaf, intermediates, private key and non-fatal notes of a TLS Secret's PEM data, as
    ingressd would serve them; CertificateError saying why not otherwise."""
    try:
        certificates = x509.load_pem_x509_certificates(crt)
    except ValueError:
        raise CertificateError("tls.crt holds no readable PEM certificate") from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError:
        raise CertificateError("tls.key is encrypted with a password") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError("tls.key holds no readable PEM private key") from None
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CertificateError(
            f"tls.key is a {type(private_key).__name__.lstrip('_')}; RSA or ECDSA expected"
        )

    _check_strength(private_key)
    public = _spki(private_key.public_key())
    position = next(
        (i for i, cert in enumerate(certificates) if _spki(cert.public_key()) == public), None
    )
    if position is None:
        raise CertificateError("tls.key does not match the certificate in tls.crt")
    if position != 0:
        raise CertificateError(
            f"tls.crt must start with the certificate of tls.key (found at position {position + 1})"
        )
    leaf, chain = certificates[0], certificates[1:]

    notes: list[str] = []
    for child, parent in zip(certificates, chain):
        try:
            child.verify_directly_issued_by(parent)
        except Exception:  # wrong issuer, unsupported signature algorithm…
            notes.append(
                "the certificates in tls.crt are not a chain in order "
                "(each should be issued by the next)"
            )
            break
    return leaf, chain, private_key, notes


# OpenSSL's security level 2 (Debian's and most distributions' default) refuses to serve
# smaller keys ("ee key too small"); they are rejected with the Secret, not in a handshake.
MIN_RSA_BITS = 2048
MIN_EC_BITS = 224


def _check_strength(private_key: Any) -> None:
    size = private_key.key_size
    if isinstance(private_key, rsa.RSAPrivateKey) and size < MIN_RSA_BITS:
        raise CertificateError(f"the RSA key has {size} bits; at least {MIN_RSA_BITS} are needed")
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and size < MIN_EC_BITS:
        raise CertificateError(f"the ECDSA key has {size} bits; at least {MIN_EC_BITS} are needed")


_NEVER = datetime.max.replace(tzinfo=timezone.utc)


class _SecretsByKey:
    """``Config.secrets`` by (namespace, name), followed from one configuration to the next: which
    Secrets came, went or changed is found by comparing the two tuples place by place when they hold
    the same Secrets in the same places but for a few (one identity test a Secret: 1,000 Secrets not
    put in a dict on every change), else by key."""

    __slots__ = ("_secrets", "_by_key", "_unique")

    def __init__(self) -> None:
        self._secrets: tuple | None = None  # the last tuple followed
        self._by_key: dict = {}
        self._unique = False  # whether each of its keys is there once

    def get(self, key):
        return self._by_key.get(key)

    def follow(self, secrets: tuple) -> frozenset | None:
        """Take the next configuration's Secrets; the keys whose Secret came, went or is another
        object since the last, None the first time (or after an error half-way)."""
        previous, self._secrets = self._secrets, None  # (set again once followed)
        by_key = self._by_key
        if previous is secrets:
            self._secrets = secrets
            return frozenset()
        if previous is not None and self._unique and len(previous) == len(secrets):
            pairs = [(old, new) for old, new in zip(previous, secrets) if old is not new]
            if all(old.ref == new.ref for old, new in pairs):
                for _, new in pairs:
                    by_key[_key(new.ref)] = new
                self._secrets = secrets
                return frozenset(_key(new.ref) for _, new in pairs)
        fresh = {_key(secret.ref): secret for secret in secrets}
        changed = None if previous is None else frozenset(
            key for key in fresh.keys() | by_key.keys() if fresh.get(key) is not by_key.get(key))
        self._by_key, self._unique, self._secrets = fresh, len(fresh) == len(secrets), secrets
        return changed


class _Walk:
    """A walk of the TLS hosts (``CertificateStore._served_hosts``): what each host is served, what
    each TLS host reports, and what walking again only the hosts of some Secrets needs."""

    __slots__ = ("tls_hosts", "valid_from", "valid_until", "groups", "users", "owners", "reports", "built",
                 "exact", "wildcard", "hosts", "problems", "warnings")

    def __init__(self, tls_hosts: tuple, now: datetime) -> None:
        self.tls_hosts = tls_hosts
        # The answer holds while ``now`` is in [valid_from, valid_until): no certificate's bound crossed.
        self.valid_from, self.valid_until = now, _NEVER
        self.groups: dict[str, list[int]] = {}  # host (as served) → the indices of its TLS hosts, in order
        self.users: dict[tuple[str, str], list[int]] = {}  # Secret key → the indices of the TLS hosts naming it
        self.owners: dict[str, int] = {}  # host → the index of the TLS host that serves it
        # index of a TLS host → (its warnings, its problem ((Ingress, Secret, reason), host) or None)
        self.reports: dict[int, tuple] = {}
        self.built: dict[tuple[str, str], Certificate | CertificateError] = {}  # by Secret key
        self.exact: dict[str, Certificate | None] = {}  # as ``_CertificateMap``'s
        self.wildcard: dict[str, Certificate | None] = {}
        self.hosts: dict[str, Certificate | None] = {}
        self.problems: dict[tuple[ObjectRef, ObjectRef, str], list[str]] = {}
        self.warnings: tuple[Rejection, ...] = ()

    def serve(self, host: str, served: Certificate | None) -> None:
        self.hosts[host] = served
        if host.startswith("*."):
            self.wildcard[host[2:]] = served
        else:
            self.exact[host] = served

    def report(self) -> None:
        """The problems and warnings of the TLS hosts' reports, in the TLS hosts' order."""
        problems: dict[tuple[ObjectRef, ObjectRef, str], list[str]] = {}
        warnings: list[Rejection] = []
        for index in sorted(self.reports):
            found, problem = self.reports[index]
            warnings.extend(found)
            if problem is not None:
                problems.setdefault(problem[0], []).append(problem[1])
        self.problems, self.warnings = problems, tuple(warnings)

    def bound(self, results: Iterable, now: datetime) -> None:
        """Narrow the answer's validity to the bounds of these certificates (a not_before ahead)."""
        for result in results:
            if isinstance(result, Certificate):
                self.valid_until = min(self.valid_until, result.not_after,
                                       result.not_before if result.not_before > now else _NEVER)


def _host_name(name: str) -> str:
    """A host as the store keys it: without surrounding blanks or a trailing dot, in lower case."""
    return name.strip().lower().rstrip(".")


def _same_asking(a: tuple, b: tuple) -> bool:
    """Whether two (default, exact, wildcard, policies, settings) are the same certificates
    (by identity) asking with equal policies and settings."""
    return (len(a) == len(b) == 5 and a[0] is b[0] and _same_values(a[1], b[1]) and _same_values(a[2], b[2])
            and a[3] == b[3] and a[4] == b[4])


def _same_values(a: Mapping, b: Mapping) -> bool:
    return a is b or (a.keys() == b.keys() and all(a[key] is b[key] for key in a))


def _check_not_expired(not_after: datetime, now: datetime) -> None:
    if not_after <= now:
        raise CertificateError(f"the certificate expired on {not_after:%Y-%m-%d %H:%M:%S} UTC")


def _spki(public_key: Any) -> bytes:
    try:
        return public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:
        return b""


def _dns_names(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names: Iterable[str] = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(attribute.value)
            for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return tuple(name.lower().rstrip(".") for name in names)


def _key(ref: ObjectRef) -> tuple[str, str]:
    return (ref.namespace, ref.name)


def _secret_label(ref: ObjectRef) -> str:
    return f"Secret {ref.namespace}/{ref.name}"


def _source_label(certificate: Certificate) -> str:
    if certificate.secret is None:
        return certificate.source
    return f"{certificate.secret.namespace}/{certificate.secret.name}"
