# ingressd: a Kubernetes ingress server on Twisted.
#   docker build -t ingressd:latest .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingressd ./ingressd
COPY plugins ./plugins
COPY twisted ./twisted
RUN pip install ".[otel]" \
    # Build twistd's plugin cache now: at run time the root filesystem is read-only.
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && rm -rf /src

RUN groupadd --system --gid 65532 ingressd \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin ingressd
USER 65532:65532
WORKDIR /

# http, https, health (/healthz, /readyz); high ports: no capabilities needed
EXPOSE 8080 8443 9180

CMD ["twistd", "-n", "--pidfile=", "ingressd", "--kubernetes"]
