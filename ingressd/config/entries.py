"""Route entries: each route with its balancer, its upstream settings and its plugins' prepared features.

Built once per configuration change (``build_table``); the request path (``ingressd.proxy.chain``)
only calls the bound methods collected here, already sorted by phase.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from typing import Iterable

from twisted.python import log

from ingressd.proxy.chain import in_phase_order, request_methods
from ingressd.features import AnnotationError, BuildContext, RoundRobin, UpstreamSettings
from ingressd.config.model import Config, Endpoint, Rejection, Route
from ingressd.config.routing import RouteTable
from ingressd.config.weighted import WeightedBalancers
from ingressd.config.window import window
from ingressd.tls.misdirected import ListenerHostnames
from ingressd.tls.passthrough_hosts import PassthroughHosts
from ingressd.proxy.next_upstream import DEFAULT as DEFAULT_NEXT_UPSTREAM


_NO_CODES: frozenset[int] = frozenset()  # shared: an empty frozenset is 216 bytes per route

# The server's settings when it is given none (ProxySettings' defaults, ingress-nginx's).
DEFAULT_UPSTREAM = UpstreamSettings(connect_timeout=5.0, read_timeout=60.0, send_timeout=60.0,
                                    max_body_size=1024 * 1024, protocol="HTTP", http_version="1.1",
                                    request_buffering=True, body_buffer_size=65536, response_buffering=False,
                                    response_memory=4 * 4096, max_temp_file_size=1024 * 1024 * 1024,
                                    limit_rate=0, limit_rate_after=0, next_upstream=DEFAULT_NEXT_UPSTREAM)
HTTP = "HTTP"  # the upstream protocol every server speaks: HTTP/1.1 in clear
HTTPS = "HTTPS"  # HTTP/1.1 over TLS
# ingress-nginx's AUTO_HTTP: HTTP or HTTPS to the backend as the client came (served where both are).
AUTO_HTTP = "AUTO_HTTP"
GRPC, GRPCS = "GRPC", "GRPCS"  # HTTP/2 in clear, HTTP/2 over TLS (proxy/h2_upstream.py)
# What a server speaks (IngressdService.upstreams, and AUTO_HTTP made of its two): what
# ``ingressd check`` and the testing harness build with too.
SPOKEN = frozenset((HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, "FCGI"))  # FCGI: proxy/fastcgi_upstream.py


def _same_objects(known: tuple, ordered: list) -> bool:
    """Whether ``ordered`` holds the very objects of ``known``, in its order (identity, not
    equality: a feature may keep state of its own)."""
    return len(known) == len(ordered) and all(a is b for a, b in zip(known, ordered))


def _round_robin(backend) -> RoundRobin:
    return RoundRobin(backend.endpoints)


def _lifted(defaults: UpstreamSettings, timeouts) -> UpstreamSettings:
    """A route with time limits of its own (``Route.timeouts``, ``proxy.route_timeouts``): the
    server's read and send timeouts (between two reads or writes) never end a try sooner than
    those limits would; 0 (disabled) leaves them as they are."""
    longest = max(timeouts.request or 0.0, timeouts.backend_request or 0.0)
    if longest <= (defaults.read_timeout or 0.0) and longest <= (defaults.send_timeout or 0.0):
        return defaults
    return dataclasses.replace(defaults, read_timeout=max(defaults.read_timeout or 0.0, longest),
                               send_timeout=max(defaults.send_timeout or 0.0, longest))


class RouteEntry:
    """What the proxy needs for one route, prepared."""

    __slots__ = ("route", "balancer", "request_features", "response_features", "upstream_request_features",
                 "error_features", "error_codes", "features", "upstream", "regex", "access_log",
                 "canary", "alternatives", "weighted")

    def __init__(self, route: Route, features: Iterable = (), defaults: UpstreamSettings = DEFAULT_UPSTREAM,
                 like: "RouteEntry | None" = None):
        # ``like``: an entry built just before (build_table passes the last one). Where its route has
        # the very same Backend, the two share its round-robin, as nginx's locations share their
        # upstream's; where its features are the very same objects, what is derived from them is
        # shared too (at 10,000 Ingresses, 20,000 round-robins and 12,000 tuples fewer: ~1.5 MiB).
        self.route = route
        shared = like.balancer if like is not None and like.route.backend is route.backend else None
        if type(shared) is RoundRobin and shared.endpoints is route.backend.endpoints:
            self.balancer = shared
        else:
            self.balancer = RoundRobin(route.backend.endpoints)
        # A weighted backend set (Gateway API backendRefs): one member's balancer per request,
        # chosen by the exchange (None: every request goes to ``balancer``).
        self.weighted = WeightedBalancers(route.backends, _round_robin) if route.backends else None
        # The route's timeouts, body limit and protocol: its features' over the server's.
        self.upstream: UpstreamSettings = defaults if route.timeouts is None else _lifted(defaults, route.timeouts)
        # The route's path is a regular expression (a feature says ``regex_paths = True``:
        # use-regex, rewrite-target): its host is matched in regex mode (config.regex_routing).
        self.regex = False
        # Whether the route's requests are written to the access log (a feature saying
        # ``access_log = False``: enable-access-log "false").
        self.access_log = True
        # A canary route (a feature's ``canary``: a rule with ``wants(exchange)``) is not routed to
        # itself; it is attached to the main route of the same host and path, whose
        # ``alternatives`` are ((rule, canary entry),) — set by build_table on every build.
        self.canary = None
        self.alternatives: tuple = ()
        if not features:  # most routes: no annotation asks for anything
            self.features = self.request_features = self.response_features = self.error_features = ()
            self.upstream_request_features = ()
            self.error_codes = _NO_CODES
            return
        ordered = in_phase_order(features)
        if like is not None and _same_objects(like.features, ordered):
            self.features = like.features
            self.request_features = like.request_features
            self.response_features = like.response_features
            self.upstream_request_features = like.upstream_request_features
            self.error_features = like.error_features
            self.error_codes = like.error_codes
        else:
            self.features = tuple(ordered)
            self.request_features = request_methods(ordered)
            self.response_features = tuple(f.response for f in ordered if hasattr(f, "response"))
            self.upstream_request_features = tuple(f.upstream_request for f in ordered
                                                   if hasattr(f, "upstream_request"))
            self.error_features = tuple(
                (frozenset(getattr(f, "error_codes", ())), f.error) for f in ordered if hasattr(f, "error")
            )
            codes: set[int] = set()
            for feature_codes, _ in self.error_features:
                codes |= feature_codes
            self.error_codes = frozenset(codes) if codes else _NO_CODES
        self.regex = any(getattr(feature, "regex_paths", False) for feature in ordered)
        self.access_log = all(getattr(feature, "access_log", True) for feature in ordered)
        self.canary = next((f.canary for f in ordered if getattr(f, "canary", None) is not None), None)
        # A feature's ``balancer`` (load-balance: ewma) replaces the round-robin over the endpoints.
        self.balancer = next((f.balancer for f in ordered if getattr(f, "balancer", None) is not None), self.balancer)
        for feature in ordered:  # a later phase's value wins, field by field
            settings = getattr(feature, "upstream", None)
            if settings is not None:
                self.upstream = settings.over(self.upstream)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return self.balancer.endpoints

    def pick(self, exclude=()) -> Endpoint | None:
        """The next ready endpoint, round-robin, avoiding ``exclude`` while others remain."""
        return self.balancer.pick(exclude)


def _special(entry: RouteEntry) -> bool:
    """Whether the passes after the entries are built (host-wide features, canaries, client
    certificates, host TLS settings) read ``entry``: a canary, or a feature that is host-wide or
    carries a client-certificate policy or TLS settings for its host. Those passes walk only
    these entries (an entry none of them reads changes nothing they find)."""
    if entry.canary is not None:
        return True
    for feature in entry.features:
        if getattr(feature, "host_wide", False) or getattr(feature, "client_auth", None) is not None \
                or getattr(feature, "host_tls", None) is not None:
            return True
    return False


# ``previous``'s key for the entries the last build gave alternatives (main routes of canaries).
_MAINS = "canary mains"


def _attach_canaries(entries: list[RouteEntry], special: list[RouteEntry] | None = None,
                     previous: dict | None = None) -> tuple[list[RouteEntry], list]:
    """Canary routes leave the table and become the alternative of the main route of the same host
    and path (the first canary for it, as ingress-nginx's balancer uses its first alternative);
    returns the routed entries and the Ingresses of canaries that found no main route.
    ``special``: the entries that may be canaries (``_special``'s), in order, when the caller
    has them; ``previous``: build_table's, where the mains
    given alternatives are kept."""
    # Proportional to the canaries' hosts, not to the table: entries are reused from the previous
    # build, so only those that had an alternative are reset (the last build's mains, when
    # ``previous`` kept them; else every entry is looked at), and only routes of a host a canary
    # has are candidates for main (in order: the first main of a host and path wins).
    mains_before = previous.pop(_MAINS, None) if previous is not None else None
    for entry in (entries if mains_before is None else mains_before):
        if entry.alternatives:
            entry.alternatives = ()
    canaries = [entry for entry in (entries if special is None else special) if entry.canary is not None]
    if previous is not None:
        previous[_MAINS] = given = []
    if not canaries:
        return list(entries), []
    hosts = {entry.route.host for entry in canaries}
    mains: dict[tuple[str, str], RouteEntry] = {}
    for entry in entries:
        if entry.canary is None and entry.route.host in hosts:
            mains.setdefault((entry.route.host, entry.route.path), entry)
    unattached = []
    for entry in canaries:
        main = mains.get((entry.route.host, entry.route.path))
        if main is None:
            unattached.append(entry.route.ingress)
        elif not main.alternatives:
            main.alternatives = ((entry.canary, entry),)
            if previous is not None:
                given.append(main)
    return [entry for entry in entries if entry.canary is None], unattached


def _host_wide_shared(entries: list[RouteEntry], defaults: UpstreamSettings,
                      special: list[RouteEntry] | None = None) -> list[RouteEntry]:
    """Features that say ``host_wide = True`` (a server-snippet's: nginx's server block) serve every
    route of their host: those of the host's first route that has any (the oldest Ingress's, as
    ingress-nginx keeps the first server-snippet it meets) replace any other route's. Each kind
    (the ``host_wide`` value: ``True``, ``"auth-tls"``…) is chosen on its own: an older Ingress's
    server-snippet never hides a newer one's client-certificate check."""
    by_kind: dict[tuple[str, object], tuple] = {}
    for entry in (entries if special is None else special):  # (``_special``: every host-wide one)
        for feature in entry.features:
            kind = getattr(feature, "host_wide", False)
            if kind and (entry.route.host, kind) not in by_kind:
                by_kind[(entry.route.host, kind)] = tuple(
                    f for f in entry.features if getattr(f, "host_wide", False) == kind)
    if not by_kind:
        return entries
    chosen: dict[str, tuple] = {}
    for (host, _), wide in by_kind.items():
        chosen[host] = chosen.get(host, ()) + wide
    shared = []
    for entry in entries:
        wide = chosen.get(entry.route.host)
        own = [f for f in entry.features if not getattr(f, "host_wide", False)]
        mine = sorted(id(f) for f in entry.features if getattr(f, "host_wide", False))
        if wide is None or mine == sorted(map(id, wide)):
            shared.append(entry)
            continue
        replaced = RouteEntry(entry.route, [*wide, *own], defaults)
        replaced.balancer = entry.balancer  # keep the round-robin position
        shared.append(replaced)
    return shared


# ``previous``'s key for the last build's (routes, their entries in order, default backend route),
# kept when no Ingress failed: the next build takes the entries of the routes outside the window
# where the two configurations' routes differ, by position (route ids are ints: no clash).
_LAST = "last build"


def build_table(config: Config, plugins, context: BuildContext,
                previous: dict | None = None, previous_table: RouteTable | None = None,
                defaults: UpstreamSettings = DEFAULT_UPSTREAM, protocols: frozenset[str] = SPOKEN,
                ) -> tuple[RouteTable, Config]:
    """Build the route table; an Ingress whose features cannot be built is rejected whole.

    ``defaults`` are the server's upstream settings (complete: no None), under each route's;
    ``protocols`` the upstream protocols the server speaks: an Ingress with a route to
    another is rejected (never sent elsewhere or in another protocol).

    ``previous`` (owned by the caller, updated here) maps ``id(route)`` to the entry built
    for that very Route object last time: an unchanged route keeps its entry (and its
    features and round-robin position) instead of having them built again. (A caller that
    changes ``defaults`` or ``protocols`` passes a new, empty ``previous``.) When the last
    build with it had no failed Ingress, only the routes in the window where the two
    configurations' routes differ are looked at (``config.window``); the others keep their
    entries by position.
    """
    failed: dict = {}
    entries: list[RouteEntry] = []
    # The features of the object (Ingress, HTTPRoute) whose routes are being built, by match:
    # an object's routes come together (each source emits them so, and merging keeps it), so
    # only the current object's are kept. Keeping every route's key to the build's end (30,000
    # 7-tuples at 10,000 Ingresses, ~6 MiB) left that much of the heap resident after it.
    cache: dict = {}
    cached_for = None
    last_built: RouteEntry | None = None  # what the next entry may share (RouteEntry's ``like``)
    reused: dict = {}
    previous = {} if previous is None else previous
    # One build's route_features: what does not depend on the path is asked once per
    # Ingress and host (``same_for_every_path``); test doubles may offer only route_features.
    for_build = getattr(plugins, "route_features_for_build", None) if plugins else None
    route_features = for_build() if for_build is not None else (plugins.route_features if plugins else None)

    def entry_for(route: Route) -> RouteEntry | None:
        known = previous.get(id(route))
        if known is not None and known.route is route:
            reused[id(route)] = known
            return known
        if route.ingress in failed:
            return None
        entry = built(route)
        if entry is None:
            return None
        if entry.weighted is not None and any(member.filters for member in route.backends):
            # backendRefs with filters of their own: each such member's requests run through an
            # entry whose features are the route's filters and then the member's.
            members = []
            for member in route.backends:
                own = None
                if member.filters:
                    own = built(dataclasses.replace(route, filters=route.filters + member.filters, backends=(),
                                                    backend=member.backend or route.backend))
                    if own is None:
                        return None
                members.append(own)
            entry.weighted.entries = tuple(members)
        reused[id(route)] = entry
        return entry

    def built(route: Route) -> RouteEntry | None:
        # The routes of one Ingress share their features tuple: its identity is the key
        # (hashing ~60 annotation values per route cost ~2 µs; the routes are alive here).
        # Features may depend on the path too (rewrite-target's pattern, no-auth-locations),
        # and on the Gateway API filters (two rules of one HTTPRoute on one path, told apart by
        # their matches, may have different ones).
        nonlocal cached_for, last_built
        if route.ingress is not cached_for and route.ingress != cached_for:
            cache.clear()
            cached_for = route.ingress
        key = (id(route.features), route.tls, route.host, route.path, route.path_type, route.filters)
        try:
            features = cache.get(key)
            if features is None:
                features = cache[key] = route_features(route, context) if plugins else []
        except AnnotationError as exc:
            failed[route.ingress] = str(exc)
            return None
        except Exception as exc:  # a plugin bug must not take down other Ingresses
            log.err(None, f"ingressd: a plugin failed while building routes of {route.ingress}")
            failed[route.ingress] = f"a plugin failed: {exc}"
            return None
        entry = last_built = RouteEntry(route, features, defaults, last_built)
        if entry.upstream.protocol not in protocols:
            failed[route.ingress] = (f"backend protocol {entry.upstream.protocol} is not served by ingressd "
                                     f"(it speaks {', '.join(sorted(protocols))})")
            return None
        return entry

    remembered = previous.get
    last = previous.pop(_LAST, None)
    if last is not None:
        # Proportional: the routes outside the window where this configuration's routes differ
        # from the last build's (config.window, by identity) keep their entries, by position;
        # ``previous`` loses the routes that left and gains those that came.
        routes, raw, default_route, special, places = last
        start, old_end, new_end = window(routes, config.routes)
        fresh = []
        for route in config.routes[start:new_end]:
            known = remembered(id(route))  # a route that moved keeps its entry
            fresh.append(known if known is not None and known.route is route else entry_for(route))
        for route in routes[start:old_end]:
            previous.pop(id(route), None)
        if default_route is not None and default_route is not config.default_backend:
            previous.pop(id(default_route), None)
        for route, entry in zip(config.routes[start:new_end], fresh):
            if entry is not None:
                previous[id(route)] = entry
        raw = raw[:start] + fresh + raw[old_end:]
        entries = raw if None not in fresh else [entry for entry in raw if entry is not None]
        # The special entries (``_special``) and their places in ``raw``, followed the same way.
        low, high = bisect_left(places, start), bisect_left(places, old_end)
        came = [(start + n, entry) for n, entry in enumerate(fresh) if entry is not None and _special(entry)]
        shift = new_end - old_end
        special = special[:low] + [entry for _, entry in came] + special[high:]
        places = places[:low] + [place for place, _ in came] + [place + shift for place in places[high:]]
        default = entry_for(config.default_backend) if config.default_backend is not None else None
        if default is not None:
            previous[id(config.default_backend)] = default
    else:
        for route in config.routes:
            # entry_for's first case inline: on a change nearly every route is the same object as
            # last time (a call per route was ~3 ms of a change at 30,000 routes).
            known = remembered(id(route))
            if known is not None and known.route is route:
                reused[id(route)] = known
                entries.append(known)
                continue
            entry = entry_for(route)
            if entry is not None:
                entries.append(entry)
        raw = entries
        default = entry_for(config.default_backend) if config.default_backend is not None else None
        previous.clear()
        previous.update(reused)
        places = [n for n, entry in enumerate(raw) if entry.features and _special(entry)]
        special = [raw[n] for n in places]
    if not failed:  # the next build may start from this one's routes and entries (none failed)
        previous[_LAST] = (config.routes, raw, config.default_backend, special, places)
    # The passes below read only the special entries (``_special``: none in bench/scale.py's
    # 10,000 Ingresses), followed from the last build by the window: no walk of the 30,000.
    if any(getattr(feature, "host_wide", False) for entry in special for feature in entry.features):
        entries = _host_wide_shared(entries, defaults, special)
        special = [entry for entry in entries if entry.features and _special(entry)]
    if failed:  # (a lookup per route only when some Ingress failed)
        entries = [entry for entry in entries if entry.route.ingress not in failed]
        special = [entry for entry in special if entry.route.ingress not in failed]
    entries, unattached = _attach_canaries(entries, special, previous)
    special = [entry for entry in special if entry.canary is None]  # canaries left the table
    for ref in unattached:
        failed.setdefault(ref, "canary Ingress without a main Ingress of the same host and path: not served "
                               "(as ingress-nginx, which attaches a canary to its main Ingress)")
    if failed:
        if default is not None and default.route.ingress in failed:
            default = None
        rejections = config.rejections + tuple(Rejection(ref, reason) for ref, reason in failed.items())
        # Every other field as it is (replace: a field added to Config is never dropped here).
        config = dataclasses.replace(
            config,
            routes=tuple(r for r in config.routes if r.ingress not in failed),
            default_backend=config.default_backend if default is not None else None,
            tls_hosts=tuple(t for t in config.tls_hosts if t.ingress not in failed),
            rejections=rejections,
        )
    if plugins:
        routed = len(entries)
        entries, config = _with_host_routes(entries, config, plugins, context, defaults)
        special += [entry for entry in entries[routed:] if _special(entry)]
    config = _with_client_auth(special, config)
    config = _with_host_tls(special, config)
    passthrough = PassthroughHosts(config.passthrough, _round_robin) if config.passthrough else None
    misdirected = ListenerHostnames(config.https_listeners) if config.https_listeners else None
    return RouteTable(entries, default, previous_table, passthrough=passthrough, misdirected=misdirected), config


def _with_host_tls(entries: list, config: Config) -> Config:
    """``config.host_tls``: each host whose routes' features carry a ``host_tls`` (ssl-ciphers,
    ssl-prefer-server-ciphers), each setting the oldest Ingress's that gives it, as ingress-nginx
    keeps the first value it meets for a server (entries come oldest Ingress first)."""
    hosts: dict[str, object] = {}
    for entry in entries:
        for feature in entry.features:
            tls = getattr(feature, "host_tls", None)
            if tls is not None and entry.route.host:
                known = hosts.get(entry.route.host)
                hosts[entry.route.host] = tls if known is None else tls.merged(known)
    found = tuple(hosts.items())
    return config if found == config.host_tls else dataclasses.replace(config, host_tls=found)


def _with_client_auth(entries: list, config: Config) -> Config:
    """``config.client_auth``: each host whose routes' features carry a ``client_auth`` policy
    (auth-tls, host-wide: one per host), for the TLS handshakes of that host."""
    hosts: dict[str, object] = {}
    for entry in entries:
        for feature in entry.features:
            auth = getattr(feature, "client_auth", None)
            if auth is not None:
                hosts.setdefault(entry.route.host, auth)
    found = tuple(hosts.items())
    return config if found == config.client_auth else dataclasses.replace(config, client_auth=found)


def _with_host_routes(entries: list, config: Config, plugins, context: BuildContext,
                      defaults: UpstreamSettings) -> tuple[list, Config]:
    """Add the routes plugins contribute for hosts no Ingress rule lists (``ingressd_host_routes``),
    each running only its own features, and their TLS hosts."""
    try:
        added = plugins.host_routes(config, context)
    except Exception:  # a plugin bug must not keep the Ingresses' own routes from being served
        log.err(None, "ingressd: a plugin failed in ingressd_host_routes")
        return entries, config
    if not added:
        return entries, config
    built = []
    for host in added:
        features = host.features
        if features is None:  # the route's own features, as its Ingress's routes have them
            try:
                features = plugins.route_features(host.route, context)
            except Exception:
                log.err(None, f"ingressd: features of {host.route.ingress} for the added host {host.route.host!r}")
                continue
        built.append((host, RouteEntry(host.route, features, defaults)))
    added = [host for host, _ in built]
    entries = entries + [entry for _, entry in built]
    return entries, dataclasses.replace(
        config,
        routes=config.routes + tuple(host.route for host in added),
        tls_hosts=config.tls_hosts + tuple(host.tls_host for host in added if host.tls_host is not None),
    )
