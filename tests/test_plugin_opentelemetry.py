"""The opentelemetry plugin in memory: which routes are traced (ConfigMap switch, the Ingress's
annotations over it), the span (name, kind, attributes, status), the traceparent the backend
gets (trusted or not), sampling, and the settings as options and ConfigMap keys."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import ingressd_plugins.opentelemetry as otel
from ingressd.config.nginx_configmap import read_configmap
from ingressd.plugin_manager import load_plugins
from ingressd.testing import PluginHarness
from ingressd.tracing.settings import TracingSettings

N = "nginx.ingress.kubernetes.io/"
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01"
FAST = {"otel_max_export_batch_size": 1, "otel_schedule_delay_millis": 50}


def harness(annotations=None, **settings):
    h = PluginHarness([otel], annotations or {}, settings={**FAST, **settings}, path="/api")
    exporter = InMemorySpanExporter()
    h.plugin_state.setdefault(otel.STATE, {})["exporter"] = exporter
    h.rebuild()
    return h, exporter


def spans(exporter, count=1):
    deadline = time.monotonic() + 20
    while len(exporter.get_finished_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return exporter.get_finished_spans()


def traced(h, headers=(), status=200, path="/api/x?y=1"):
    outcome = h.request("GET", path, headers)
    sent = dict((k.lower(), v) for k, v in outcome.upstream_headers)
    outcome.response(status)
    return sent


def parts(traceparent):
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16
    return trace_id, span_id, flags


def test_off_by_default_and_the_clients_traceparent_passes_untouched():
    h, _ = harness()
    assert not any(isinstance(f, otel.TraceRequests) for f in h.features)
    assert traced(h, {"traceparent": TRACEPARENT})["traceparent"] == TRACEPARENT


def test_configmap_switch_traces_every_route_with_the_modules_span():
    h, exporter = harness(enable_opentelemetry=True)
    sent = traced(h, {"user-agent": "probe"})
    [span] = spans(exporter)
    assert span.name == "/api"  # nginx's location name: the Ingress path
    assert span.kind == SpanKind.SERVER
    assert dict(span.attributes) == {
        "http.method": "GET", "http.flavor": "1.1", "http.target": "/api/x?y=1", "http.host": "example.com",
        "http.server_name": "example.com", "http.scheme": "http", "http.status_code": 200}
    assert span.status.status_code == StatusCode.UNSET
    assert span.resource.attributes["service.name"] == "nginx"
    trace_id, span_id, flags = parts(sent["traceparent"])
    assert (int(trace_id, 16), int(span_id, 16), flags) == (span.context.trace_id, span.context.span_id, "01")
    assert span.parent is None


def test_a_trusted_incoming_span_is_the_parent_and_its_trace_is_kept():
    h, exporter = harness(enable_opentelemetry=True)
    sent = traced(h, {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    [span] = spans(exporter)
    trace_id, span_id, _ = parts(sent["traceparent"])
    assert trace_id == INCOMING_TRACE and span_id != INCOMING_SPAN
    assert span.parent.span_id == int(INCOMING_SPAN, 16)
    assert sent["tracestate"] == "vendor=abc"


def test_untrusted_incoming_span_starts_a_new_trace():
    h, exporter = harness(enable_opentelemetry=True, opentelemetry_trust_incoming_span=False)
    sent = traced(h, {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    [span] = spans(exporter)
    trace_id, _, _ = parts(sent["traceparent"])
    assert trace_id != INCOMING_TRACE and span.parent is None
    assert "tracestate" not in sent  # the client's is replaced too


def test_an_error_answer_sets_the_span_status():
    h, exporter = harness(enable_opentelemetry=True)
    traced(h, status=503)
    [span] = spans(exporter)
    assert span.status.status_code == StatusCode.ERROR and span.attributes["http.status_code"] == 503


def test_the_ingress_turns_tracing_off_under_the_configmap_switch():
    h, _ = harness({N + "enable-opentelemetry": "false"}, enable_opentelemetry=True)
    assert not any(isinstance(f, otel.TraceRequests) for f in h.features)


def test_the_ingress_turns_tracing_on_with_its_own_trust_and_name():
    h, exporter = harness({N + "enable-opentelemetry": "true", N + "opentelemetry-trust-incoming-span": "false",
                           N + "opentelemetry-operation-name": "my-api_1"})
    sent = traced(h, {"traceparent": TRACEPARENT})
    [span] = spans(exporter)
    assert span.name == "my-api_1" and parts(sent["traceparent"])[0] != INCOMING_TRACE


def test_trust_and_name_annotations_count_only_beside_enable_true():
    # ingress-nginx's parser reads them only when enable-opentelemetry is set to true
    h, exporter = harness({N + "opentelemetry-trust-incoming-span": "false",
                           N + "opentelemetry-operation-name": "ignored"}, enable_opentelemetry=True)
    sent = traced(h, {"traceparent": TRACEPARENT})
    [span] = spans(exporter)
    assert span.name == "/api" and parts(sent["traceparent"])[0] == INCOMING_TRACE


def test_an_annotation_trusting_overrides_a_configmap_distrusting():
    h, _ = harness({N + "enable-opentelemetry": "true", N + "opentelemetry-trust-incoming-span": "true"},
                   opentelemetry_trust_incoming_span=False)
    assert parts(traced(h, {"traceparent": TRACEPARENT})["traceparent"])[0] == INCOMING_TRACE


def test_configmap_operation_name_expands_nginx_variables():
    h, exporter = harness(enable_opentelemetry=True, opentelemetry_operation_name="HTTP $request_method $uri")
    traced(h)
    assert spans(exporter)[0].name == "HTTP GET /api/x"


@pytest.mark.parametrize("value", ["a b", "$uri", "x.y", "x/y"])
def test_annotation_operation_name_is_letters_digits_dash_underscore(value):
    h = PluginHarness([otel], {N + "enable-opentelemetry": "true", N + "opentelemetry-operation-name": value})
    assert "opentelemetry-operation-name" in (h.rejection or "")


def test_always_off_exports_nothing_but_still_propagates_unsampled():
    h, exporter = harness(enable_opentelemetry=True, otel_sampler="AlwaysOff")
    sent = traced(h)
    assert parts(sent["traceparent"])[2] == "00"
    # a sampled parent is followed (otel-sampler-parent-based: true, the default)
    sent = traced(h, {"traceparent": TRACEPARENT})
    assert parts(sent["traceparent"])[2] == "01"
    assert len(spans(exporter, 1)) == 1


def test_not_parent_based_always_off_ignores_a_sampled_parent():
    h, exporter = harness(enable_opentelemetry=True, otel_sampler="AlwaysOff", otel_sampler_parent_based=False)
    sent = traced(h, {"traceparent": TRACEPARENT})
    assert parts(sent["traceparent"])[2] == "00"
    traced(h)
    time.sleep(0.2)  # nothing may arrive: give the export thread a few rounds
    assert exporter.get_finished_spans() == ()


def test_ratio_sampler_samples_about_its_share():
    h, exporter = harness(enable_opentelemetry=True, otel_sampler="TraceIdRatioBased", otel_sampler_ratio=0.5)
    flags = [parts(traced(h)["traceparent"])[2] for _ in range(400)]
    assert 100 < flags.count("01") < 300  # 0.5 of 400, far from either end
    assert len(spans(exporter, flags.count("01"))) == flags.count("01")


def test_a_settings_change_makes_a_new_exporter_and_closes_the_old():
    h, _ = harness(enable_opentelemetry=True)
    first = h.plugin_state[otel.STATE]["tracing"]
    h.rebuild()
    assert h.plugin_state[otel.STATE]["tracing"] is first  # nothing changed
    h.settings["otel_service_name"] = "edge"
    h.rebuild()
    assert h.plugin_state[otel.STATE]["tracing"] is not first and first.closed


def test_a_replaced_exporter_still_sends_the_spans_of_requests_begun_before():
    h, exporter = harness(enable_opentelemetry=True)
    first = h.plugin_state[otel.STATE]["tracing"]
    outcome = h.request("GET", "/api/long")  # begun under the first settings
    h.settings["otel_service_name"] = "edge"
    h.rebuild()
    assert first.closed and not first.processor._stopping  # its span is still open
    outcome.response(200)
    [span] = spans(exporter)
    assert span.resource.attributes["service.name"] == "nginx"
    assert first.processor._stopping


# -- the settings: options and ConfigMap keys -------------------------------------------------------


def read(data):
    plugins = load_plugins()
    options = {option.name: option.coerce for option in plugins.options}
    return read_configmap("ingress-nginx/controller", data, plugins.annotations, options)


def test_configmap_keys_become_settings():
    reading = read({"enable-opentelemetry": "true", "otlp-collector-host": "otel.example", "otlp-collector-port":
                    "4318", "otel-service-name": "edge", "otel-sampler": "TraceIdRatioBased",
                    "otel-sampler-ratio": "0.25", "otel-sampler-parent-based": "false", "otel-max-queuesize": "10",
                    "otel-schedule-delay-millis": "100", "otel-max-export-batch-size": "5",
                    "opentelemetry-trust-incoming-span": "false", "opentelemetry-operation-name": "HTTP $uri",
                    "opentelemetry-config": "/etc/x.toml", "jaeger-collector-host": "jaeger"})
    assert reading.usable and not reading.warnings, reading
    settings = TracingSettings.from_settings(dict(reading.settings))
    assert settings == TracingSettings(True, False, "HTTP $uri", "otel.example", 4318, "edge", "TraceIdRatioBased",
                                       0.25, False, 10, 100, 5)
    assert settings.endpoint == "otel.example:4318"


@pytest.mark.parametrize("data, reason", [
    ({"otel-sampler": "Sometimes"}, "AlwaysOn, AlwaysOff, TraceIdRatioBased"),
    ({"otel-sampler-ratio": "1.5"}, "from 0 to 1"),
    ({"otlp-collector-port": "70000"}, "port"),
    ({"otlp-collector-host": "http://otel:4317"}, "no scheme"),
    ({"enable-opentelemetry": "yes"}, "strconv.ParseBool"),
    ({"otel-max-queuesize": "0"}, "at least 1"),
    ({"otel-max-export-batch-size": "4096"}, "at most otel-max-queuesize"),
    ({"opentelemetry-operation-name": "$nope"}, "$nope"),
])
def test_a_bad_value_refuses_the_configmap(data, reason):
    reading = read(data)
    assert not reading.usable and any(reason in refusal for refusal in reading.refusals), reading.refusals


def test_ipv6_collector_address():
    assert TracingSettings(collector_host="fd00::1").endpoint == "[fd00::1]:4317"
    assert TracingSettings().endpoint is None


# -- without the otel extra ---------------------------------------------------------------------------


@pytest.fixture
def no_sdk(monkeypatch):
    from ingressd import Tracing

    monkeypatch.setattr(Tracing, "available", staticmethod(lambda: False))


def test_without_the_sdk_the_switch_is_refused_with_the_reason(no_sdk):
    reading = read({"enable-opentelemetry": "true"})
    assert not reading.usable and any("ingressd[otel]" in refusal for refusal in reading.refusals)
    assert read({"enable-opentelemetry": "false", "otel-sampler": "AlwaysOff"}).usable  # nothing traced: fine


def test_without_the_sdk_an_ingress_asking_for_tracing_is_rejected(no_sdk):
    h = PluginHarness([otel], {N + "enable-opentelemetry": "true"})
    assert "ingressd[otel]" in (h.rejection or "")
    assert PluginHarness([otel], {N + "enable-opentelemetry": "false"}).rejection is None


def test_the_option_is_refused_at_start_without_the_sdk(no_sdk):
    from twisted.python import usage

    from ingressd.tap import Options

    with pytest.raises(usage.UsageError, match=r"ingressd\[otel\]"):
        Options().parseOptions(["--manifests", ".", "--enable-opentelemetry", "true"])


@pytest.mark.parametrize("hostile", [
    "garbage", "00-" + "0" * 32 + "-" + INCOMING_SPAN + "-01", f"00-{INCOMING_TRACE}-" + "0" * 16 + "-01",
    f"ff-{INCOMING_TRACE}-{INCOMING_SPAN}-01", f"00-{INCOMING_TRACE.upper()}-{INCOMING_SPAN}-01",
    f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-01-extra\x00", "00-" + "a" * 5000,
])
def test_a_malformed_traceparent_starts_a_new_trace(hostile):
    h, exporter = harness(enable_opentelemetry=True)
    sent = traced(h, {"traceparent": hostile, "tracestate": "x" * 600})
    trace_id, _, flags = parts(sent["traceparent"])
    assert trace_id != INCOMING_TRACE and flags == "01"
    [span] = spans(exporter)
    assert span.parent is None and "tracestate" not in sent


def test_options_that_do_not_fit_together_are_refused_at_start():
    from twisted.python import usage

    from ingressd.tap import Options

    with pytest.raises(usage.UsageError, match="otel-max-export-batch-size"):
        Options().parseOptions(["--manifests", ".", "--otel-max-queuesize", "8", "--otel-max-export-batch-size", "9"])
    with pytest.raises(usage.UsageError, match="AlwaysOn, AlwaysOff, TraceIdRatioBased"):
        Options().parseOptions(["--manifests", ".", "--otel-sampler", "Sometimes"])
