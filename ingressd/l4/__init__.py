"""TCP and UDP services (ingress-nginx's ``--tcp-services-configmap`` and
``--udp-services-configmap``): L4 proxying of listed ports to Services' ready endpoints.

``table`` (ConfigMap data → an immutable ``L4Table``), ``proxy_protocol`` (the PROXY protocol
header written to a backend; a client's is read by ``ingressd.http.proxy_protocol``), ``tcp`` (a TCP port's connections spliced to an endpoint), ``udp``
(a UDP port's client sessions), ``stream_log`` (the per-connection access-log line, ``log-format-stream``),
``stream_settings`` (the settings a ConfigMap change or SIGHUP swaps in: timeouts, next upstream), and
``manager`` (opens and closes the listeners when the table changes).
"""
