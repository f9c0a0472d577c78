"""OpenTelemetry tracing of proxied requests, as ingress-nginx's ``enable-opentelemetry``.

``settings``: the ConfigMap keys (``--NAME`` options) parsed into one ``TracingSettings``;
``batch``: a bounded span queue exported from its own thread; ``tracer``: spans and W3C
``traceparent`` propagation, on the OpenTelemetry SDK (the optional ``ingressd[otel]`` extra).
The request-path side is the ``opentelemetry`` plugin (``plugins/opentelemetry.py``).
"""
