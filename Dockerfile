# ingressd: a Kubernetes ingress server on Twisted.
#   docker build -t ingressd:latest .
# Two stages. The first (stage 0) has a C compiler and builds ingressd into a virtualenv with
# its optional C accelerators (setup.py ACCELERATORS); the second, the image, takes the
# virtualenv and has no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY ingressd ./ingressd
COPY plugins ./plugins
COPY twisted ./twisted
RUN python -m venv /opt/ingressd && /opt/ingressd/bin/pip install ".[otel]" \
    # The accelerators are optional to pip; here, with gcc at hand, a missing one is an error.
    && /opt/ingressd/bin/python -c "from ingressd.http import request_head; assert request_head.ACCELERATED" \
    # Build twistd's plugin cache now: at run time the root filesystem is read-only.
    && /opt/ingressd/bin/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

FROM python:3.11-slim
COPY --from=0 /opt/ingressd /opt/ingressd
ENV PATH=/opt/ingressd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 65532 ingressd \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin ingressd
USER 65532:65532
WORKDIR /

# http, https, health (/healthz, /readyz); high ports: no capabilities needed
EXPOSE 8080 8443 9180

CMD ["twistd", "-n", "--pidfile=", "ingressd", "--kubernetes"]
