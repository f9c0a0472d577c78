"""OpenTelemetry tracing end to end: the real ``twistd ingressd`` with the ingress-nginx ConfigMap in
file mode, a real backend and a real OTLP/gRPC collector (a grpcio server implementing
opentelemetry-proto's TraceService). Spans arrive with the module's names, attributes and status;
the backend gets a ``traceparent`` of the same trace; trusting or not the client's span; the
Ingress's annotations over the ConfigMap's switch; a live sampler change; a bad value refused with
the previous settings kept; a collector that is down changes nothing for the requests; and in cluster
mode (the fake API server) the watched ConfigMap applies live, a refused edit with a Warning Event."""

from __future__ import annotations

import socket
import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from backends import Backend
from harness import INGRESS_CLASS, Ingressd, ingress, service, wait_for, write_manifests

pytestmark = pytest.mark.slow
N = "nginx.ingress.kubernetes.io/"
CM = "ingress-nginx/ingress-nginx-controller"
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector on 127.0.0.1 keeping every span it is sent."""

    def __init__(self):
        self.spans = []  # (service.name, span)
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        with self._lock:
            for resource_spans in request.resource_spans:
                service_name = _attributes(resource_spans.resource.attributes).get("service.name")
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((service_name, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def find(self, trace_id: str):
        with self._lock:
            return [(name, span) for name, span in self.spans if span.trace_id.hex() == trace_id]

    def stop(self):
        self.server.stop(0)


def _attributes(pairs):
    values = {}
    for pair in pairs:
        value = pair.value
        values[pair.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return values


def configmap(data):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"}, "data": dict(data)}


def objects(web, data):
    return [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]), configmap(data),
        ingress("traced", [("traced.test", [("/", "Prefix", "web", 80)])]),
        ingress("off", [("off.test", [("/", "Prefix", "web", 80)])], annotations={N + "enable-opentelemetry": "false"}),
        ingress("own", [("own.test", [("/", "Prefix", "web", 80)])],
                annotations={N + "enable-opentelemetry": "true", N + "opentelemetry-trust-incoming-span": "false",
                             N + "opentelemetry-operation-name": "own-span"}),
    ]


def sent_traceparent(web, path):
    """The traceparent the backend got for the last request to ``path`` (None: none)."""
    for _method, target, headers, _length in reversed(web.requests):
        if target == path:
            found = [value for name, value in headers if name.lower() == "traceparent"]
            return found[0] if found else None
    raise AssertionError(f"the backend got no request for {path}")


def test_spans_propagation_trust_annotations_and_a_live_sampler_change(tmp_path):
    collector = Collector()
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    settings = {"enable-opentelemetry": "true", "otlp-collector-host": "127.0.0.1",
                "otlp-collector-port": str(collector.port), "otel-service-name": "edge",
                "otel-schedule-delay-millis": "100"}
    write_manifests(manifests / "all.yaml", objects(web, settings))
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        # trusted (the ConfigMap's default): the client's trace goes on, with ingressd's span as the parent
        assert proc.get("/a?x=1", host="traced.test", headers={"traceparent": TRACEPARENT}).status == 200
        version, trace_id, span_id, flags = sent_traceparent(web, "/a?x=1").split("-")
        assert (version, trace_id, flags) == ("00", INCOMING_TRACE, "01") and span_id != INCOMING_SPAN
        wait_for(lambda: collector.find(INCOMING_TRACE))
        [(service_name, span)] = collector.find(INCOMING_TRACE)
        assert service_name == "edge" and span.name == "/" and span.kind == SPAN_KIND_SERVER
        assert span.span_id.hex() == span_id and span.parent_span_id.hex() == INCOMING_SPAN
        attributes = _attributes(span.attributes)
        assert attributes == {"http.method": "GET", "http.flavor": "1.1", "http.target": "/a?x=1",
                              "http.host": "traced.test", "http.server_name": "traced.test", "http.scheme": "http",
                              "http.status_code": 200}
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0

        # a 5xx answer: status ERROR
        assert proc.get("/status/503", host="traced.test").status == 503
        error_trace = sent_traceparent(web, "/status/503").split("-")[1]
        wait_for(lambda: collector.find(error_trace))
        [(_, span)] = collector.find(error_trace)
        assert span.status.code == STATUS_CODE_ERROR and _attributes(span.attributes)["http.status_code"] == 503

        # the Ingress says false: nothing of ingressd's; the client's traceparent passes as it came
        assert proc.get("/off", host="off.test", headers={"traceparent": TRACEPARENT}).status == 200
        assert sent_traceparent(web, "/off") == TRACEPARENT

        # the Ingress's own trust (false) and operation name
        assert proc.get("/own", host="own.test", headers={"traceparent": TRACEPARENT}).status == 200
        own_trace = sent_traceparent(web, "/own").split("-")[1]
        assert own_trace != INCOMING_TRACE
        wait_for(lambda: collector.find(own_trace))
        [(_, span)] = collector.find(own_trace)
        assert span.name == "own-span" and not span.parent_span_id

        # live: the sampler off (not parent-based) — requests go on, unsampled, nothing exported
        conn = proc.connection()
        conn.request("GET", "/before", headers={"Host": "traced.test"})
        assert conn.getresponse().read() is not None
        local = conn.sock.getsockname()
        write_manifests(manifests / "all.yaml", objects(web, {**settings, "otel-sampler": "AlwaysOff",
                                                              "otel-sampler-parent-based": "false"}))

        live_trace, sampled_before = "5bf92f3577b34da6a3ce929d0e0e4736", []

        def unsampled():
            conn.request("GET", "/live", headers={"Host": "traced.test",
                                                  "traceparent": f"00-{live_trace}-{INCOMING_SPAN}-01"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if sent_traceparent(web, "/live").endswith("-01"):
                sampled_before.append(1)  # sent before the change applied: exported
                return False
            return True

        wait_for(unsampled)
        assert conn.sock.getsockname() == local  # applied without dropping the connection
        assert sent_traceparent(web, "/live").split("-")[1] == live_trace  # still propagated, unsampled
        for _ in range(3):
            assert unsampled()

        # a bad value is refused: the previous settings (sampler off) stay
        write_manifests(manifests / "all.yaml", objects(web, {**settings, "otel-sampler": "Sometimes"}))
        wait_for(lambda: "ConfigMap refused" in proc.log() and "otel-sampler" in proc.log())
        assert proc.get("/after", host="traced.test").status == 200
        assert sent_traceparent(web, "/after").endswith("-00")

        # back on: a new span arrives, and none came for the unsampled requests before it (spans are
        # exported in the order they end)
        write_manifests(manifests / "all.yaml", objects(web, settings))
        fresh = "0af7651916cd43dd8448eb211c80319c"

        def sampled_again():
            response = proc.get("/again", host="traced.test", headers={"traceparent": f"00-{fresh}-{INCOMING_SPAN}-01"})
            return response.status == 200 and sent_traceparent(web, "/again").endswith("-01")

        wait_for(sampled_again)
        wait_for(lambda: collector.find(fresh))
        assert len(collector.find(live_trace)) == len(sampled_before)  # none of the unsampled ones
        conn.close()
    finally:
        proc.stop()
        web.stop()
        collector.stop()


def test_collector_down_changes_nothing_for_requests_and_is_reported(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    web = Backend("web")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    # the ConfigMap does not switch tracing on: only the Ingress saying true is traced
    write_manifests(manifests / "all.yaml", [
        INGRESS_CLASS, *service("web", [("http", 80, web.port)]),
        configmap({"otlp-collector-host": "127.0.0.1", "otlp-collector-port": str(closed_port),
                   "otel-schedule-delay-millis": "50", "otel-max-queuesize": "4", "otel-max-export-batch-size": "2"}),
        ingress("plain", [("plain.test", [("/", "Prefix", "web", 80)])]),
        ingress("on", [("on.test", [("/", "Prefix", "web", 80)])], annotations={N + "enable-opentelemetry": "true"}),
    ])
    proc = Ingressd(manifests, ["--nginx-configmap", CM])
    try:
        for index in range(30):
            assert proc.get(f"/r{index}", host="on.test").status == 200
            assert sent_traceparent(web, f"/r{index}").startswith("00-")
        assert proc.get("/plain", host="plain.test").status == 200
        assert sent_traceparent(web, "/plain") is None
        wait_for(lambda: "could not be exported to 127.0.0.1:" in proc.log(), timeout=60)
        log = proc.log()
        assert log.count("could not be exported") == 1  # reported once, not per span
        assert "span queue full" in log  # 30 spans, a queue of 4 behind a stuck exporter: dropped, counted
        assert proc.get("/last", host="on.test").status == 200
    finally:
        proc.stop()
        web.stop()


def test_cluster_mode_a_configmap_edit_applies_live_and_a_bad_one_gets_a_warning_event(tmp_path):
    import fakeapi

    collector = Collector()
    web = Backend("web")
    (tmp_path / "manifests").mkdir()
    api = fakeapi.FakeAPIServer(bookmark_interval=0.5).start()
    c = api.cluster
    c.apply(fakeapi.ingress_class())
    c.apply(fakeapi.service("web"))
    c.apply(fakeapi.endpoint_slice("web-1", "web", addresses=("127.0.0.1",), port=web.port))
    c.apply(fakeapi.ingress("app", host="app.example.com", service="web"))
    settings = {"enable-opentelemetry": "true", "otlp-collector-host": "127.0.0.1",
                "otlp-collector-port": str(collector.port), "otel-schedule-delay-millis": "100"}
    c.apply(configmap(settings))
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    proc = Ingressd(tmp_path / "manifests", ["--kubernetes", "--kubeconfig", kubeconfig, f"--configmap={CM}"])
    try:
        def service_of(path):
            """The service.name the span of one request to ``path`` was exported under."""
            assert proc.get(path, host="app.example.com").status == 200
            trace_id = sent_traceparent(web, path).split("-")[1]
            return wait_for(lambda: collector.find(trace_id))[0][0]

        assert service_of("/first") == "nginx"  # the default service name
        c.apply(configmap({**settings, "otel-service-name": "edge"}))
        wait_for(lambda: service_of("/second") == "edge")  # the watched ConfigMap, live

        def warning(words):
            for obj in c.objects_of("Event", "ingress-nginx"):
                if obj.get("involvedObject", {}).get("kind") == "ConfigMap" and words in obj.get("message", ""):
                    return obj
            return None

        c.apply(configmap({**settings, "otel-service-name": "edge", "otel-max-export-batch-size": "4096"}))
        event = wait_for(lambda: warning("otel-max-export-batch-size"))
        assert event["type"] == "Warning" and "change refused" in event["message"]
        assert service_of("/third") == "edge"  # the previous version serves on
    finally:
        proc.stop()
        api.stop()
        web.stop()
        collector.stop()
