"""The Gateway API translation, one job per module: ``status`` (conditions and status
documents), ``hostnames`` (listener × route hostname intersection), ``grants``
(ReferenceGrant), ``backends`` (backendRefs → Services), ``listeners`` (a Gateway's listeners
judged), ``route_filters`` (HTTPRoute filters → ``config.filters`` values), ``httproute``
(an HTTPRoute → routes and its per-parent status), ``grpcroute`` (a GRPCRoute: its
rules as paths, over gRPC). ``config.gateway_api`` puts them together.
"""
