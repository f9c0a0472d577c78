"""``--workers N`` (or ``auto``: one a usable CPU): several processes serving the same ports, supervised by the first.

The supervisor (``twistd ingressd --workers N``) starts N worker processes — each a full
ingressd with its own providers, route table and certificates — that listen on the same
``--http``/``--https`` ports with SO_REUSEPORT, so the kernel spreads connections over
them. A worker that dies is started again (with backoff); stopping the supervisor stops
them all. The supervisor owns the admin endpoint: ``/healthz`` (every worker running),
``/readyz`` (every worker ready), ``/metrics`` (every worker's series with a ``worker``
label; ingress-nginx's ``nginx_process_*`` figures summed over the workers) and the other
admin pages passed through from worker 0. Workers' own admin
endpoints are UNIX sockets in a private directory.

Signals go to the supervisor (it is the pod's process): SIGTERM or SIGINT is passed on to
every worker, which drains (``ingressd.drain``: its ``/readyz``, and so the supervisor's,
fails at once); the supervisor waits for them all, up to ``--shutdown-delay`` +
``--shutdown-grace`` and a margin, then exits 0. A second SIGTERM is passed on too (the
workers then exit at once). SIGHUP and SIGUSR1 are passed on to every worker.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import ProcessProtocol
from twisted.python import log
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from ingressd.proxy.transport import listen

_STOP_MARGIN = 10.0  # seconds beyond a worker's drain before it is killed


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup", affinity: Any = None) -> int:
    """The CPUs this process may use, as ingress-nginx counts them for ``worker-processes: auto``
    (pkg/util/runtime/cpu_linux.go): the CPUs it may run on, or the cgroup's CPU quota rounded up
    (a container's limit: cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)."""
    try:
        cpus = len((affinity or os.sched_getaffinity)(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        return max(1, -(-quota[0] // quota[1]))  # ingress-nginx: math.Ceil(quota / period)
    return max(1, cpus)


def _cgroup_quota(root: str) -> tuple[int, int] | None:
    """(quota, period) in microseconds, None when there is no limit (or no cgroup to read)."""
    try:
        with open(os.path.join(root, "cpu.max")) as f:  # v2: "max 100000" or "150000 100000"
            fields = f.read().split()
    except OSError:
        fields = None
    if fields is None:
        try:
            with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as f:
                quota_text = f.read().strip()
            with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as f:
                fields = [quota_text, f.read().strip()]
        except OSError:
            return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except (IndexError, ValueError):  # "max": no limit
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota, period


def parse_workers(value: Any, cpus: Any = usable_cpus) -> int:
    """``--workers``: a whole number of processes, or ``auto`` for one a usable CPU."""
    text = str(value).strip()
    if text == "auto":
        return cpus()
    number = int(text)
    if number < 1:
        raise ValueError("--workers must be at least 1")
    return number


def worker_arguments(argv: list[str], worker: int, admin: str) -> list[str]:
    """The subcommand's arguments for one worker: ``--workers`` dropped, its id and admin set."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "--admin", "--worker-id"):
            skip = True
            continue
        if arg.startswith(("--workers=", "--admin=", "--worker-id=")):
            continue
        out.append(arg)
    return [*out, "--worker-id", str(worker), "--admin", admin]


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: "Supervisor", index: int):
        self.supervisor = supervisor
        self.index = index
        self.started = supervisor.reactor.seconds()
        self.ended: defer.Deferred = defer.Deferred()

    def processEnded(self, reason) -> None:
        self.ended.callback(None)
        self.supervisor._ended(self, reason)


class Supervisor(MultiService):
    """Starts, watches and stops the worker processes (its child: the admin listener)."""

    def __init__(self, count: int, argv: list[str], reactor: Any, twistd: str | None = None,
                 drain_time: float = 65.0):
        super().__init__()
        self.count = count
        self.drain_time = drain_time  # a worker's --shutdown-delay + --shutdown-grace
        self.argv = list(argv)
        self.reactor = reactor
        self.twistd = twistd or sys.argv[0]
        self.directory = tempfile.mkdtemp(prefix="ingressd-workers-")
        self.workers: dict[int, _Worker] = {}
        self.restarts = 0
        self._delays: dict[int, float] = {}
        self._stopping = False
        self._pool = HTTPConnectionPool(reactor, persistent=True)

    def admin_socket(self, index: int) -> str:
        return os.path.join(self.directory, f"worker-{index}.sock")

    def startService(self) -> None:
        super().startService()
        for index in range(self.count):
            self._spawn(index)
        when_running = getattr(self.reactor, "callWhenRunning", None)
        if when_running is not None:
            from ingressd.signals import SignalHandlers

            handlers = SignalHandlers(self.reactor, on_force=lambda: self.signal_workers("TERM"),
                                      on_reload=lambda: self.signal_workers("HUP"),
                                      on_reopen=lambda: self.signal_workers("USR1"))
            when_running(handlers.install)

    def signal_workers(self, name: str) -> None:
        """Send signal ``name`` ("TERM", "HUP", …) to every running worker."""
        for worker in list(self.workers.values()):
            try:
                worker.transport.signalProcess(name)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _spawn(self, index: int) -> None:
        if self._stopping:
            return
        arguments = worker_arguments(self.argv, index, f"unix:{self.admin_socket(index)}")
        command = [sys.executable, self.twistd, "-n", "--pidfile=", "ingressd", *arguments]
        worker = _Worker(self, index)
        self.workers[index] = worker
        self.reactor.spawnProcess(worker, sys.executable, command, env=dict(os.environ),
                                  childFDs={0: "w", 1: 1, 2: 2})
        log.msg(f"ingressd: worker {index} started")

    def _ended(self, worker: _Worker, reason) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self._stopping:
            return
        uptime = self.reactor.seconds() - worker.started
        delay = 0.5 if uptime > 60 else min(30.0, self._delays.get(worker.index, 0.25) * 2)
        self._delays[worker.index] = delay
        self.restarts += 1
        log.msg(f"ingressd: worker {worker.index} exited ({reason.value}); starting it again in {delay:.1f}s")
        self.reactor.callLater(delay, self._spawn, worker.index)

    @defer.inlineCallbacks
    def stopService(self):
        """The workers drain first (the admin endpoint answers meanwhile), then it closes."""
        self._stopping = True
        running = list(self.workers.values())
        if running:
            log.msg(f"ingressd: asking {len(running)} worker(s) to drain and stop")
            self.signal_workers("TERM")
            everyone = defer.DeferredList([w.ended for w in running])
            timer = self.reactor.callLater(self.drain_time + _STOP_MARGIN, _kill, running)
            yield everyone
            if timer.active():
                timer.cancel()
            log.msg("ingressd: every worker has stopped")
        yield super().stopService()
        yield self._pool.closeCachedConnections()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- asking the workers ---------------------------------------------------------------

    def ask(self, index: int, path: bytes) -> defer.Deferred:
        """GET ``path`` on a worker's admin socket → (status, body)."""
        agent = Agent.usingEndpointFactory(self.reactor, _WorkerEndpoints(self), pool=self._pool)

        def read(response):
            return readBody(response).addCallback(lambda body: (response.code, body))

        uri = b"http://worker%d%s" % (index, path)
        return agent.request(b"GET", uri).addCallback(read)


def _kill(workers) -> None:
    for worker in workers:
        try:
            worker.transport.signalProcess("KILL")
        except Exception:  # noqa: BLE001 - already gone
            pass


@implementer(IAgentEndpointFactory)
class _WorkerEndpoints:
    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor

    def endpointForURI(self, uri):
        index = int(uri.host[len(b"worker"):])
        return UNIXClientEndpoint(self.supervisor.reactor, self.supervisor.admin_socket(index), timeout=5)


class _Gather(Resource):
    """Ask every worker the same page and combine the answers."""

    isLeaf = True

    def __init__(self, supervisor: Supervisor, path: bytes, combine):
        super().__init__()
        self.supervisor = supervisor
        self.path = path
        self.combine = combine

    def render_GET(self, request):
        asks = [self.supervisor.ask(i, self.path).addErrback(lambda f: (0, b""))
                for i in range(self.supervisor.count)]

        def answer(results):
            status, content_type, body = self.combine([value for _, value in results], self.supervisor)
            if not request._disconnected:
                request.setResponseCode(status)
                request.setHeader(b"content-type", content_type)
                request.write(body)
                request.finish()

        defer.DeferredList(asks).addCallback(answer)
        return NOT_DONE_YET


def _health(results, supervisor):
    running = len(supervisor.workers) == supervisor.count
    ok = running and all(status == 200 for status, _ in results)
    return (200 if ok else 503), b"text/plain", (b"ok\n" if ok else b"a worker is not running\n")


def _ready(results, supervisor):
    ready = all(status == 200 for status, _ in results) and len(results) == supervisor.count
    text = b"ready\n" if ready else b"not ready: %d of %d workers ready\n" % (
        sum(1 for status, _ in results if status == 200), supervisor.count)
    return (200 if ready else 503), b"text/plain", text


def _metrics(results, supervisor):
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.utils import floatToGoString

    families: dict[str, tuple[str, str, list]] = {}
    for index, (status, body) in enumerate(results):
        if status != 200:
            continue
        for family in text_string_to_metric_families(body.decode("utf-8")):
            known = families.setdefault(family.name, (family.type, family.documentation, []))
            for sample in family.samples:
                if sample.name.startswith(_SUMMED):
                    known[2].append((sample.name, dict(sample.labels), sample.value))
                else:
                    known[2].append((sample.name, {**sample.labels, "worker": str(index)}, sample.value))
    lines: list[str] = []
    for name, (kind, doc, samples) in families.items():
        if name.startswith(_SUMMED):
            samples = _summed(samples)
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {kind}")
        for sample_name, labels, value in samples:
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{sample_name}{{{rendered}}} {floatToGoString(value)}")
    lines.append(f'ingressd_worker_restarts_total {supervisor.restarts}')
    return 200, b"text/plain; version=0.0.4; charset=utf-8", ("\n".join(lines) + "\n").encode("utf-8")


# ingress-nginx's figures of its nginx processes: one series per pod, the workers' sum.
_SUMMED = "nginx_ingress_controller_nginx_process_"


def _summed(samples: list) -> list:
    totals: dict[tuple, list] = {}
    for name, labels, value in samples:
        key = (name, tuple(sorted(labels.items())))
        cell = totals.setdefault(key, [name, labels, 0.0])
        cell[2] += value
    return [tuple(cell) for cell in totals.values()]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _FromWorkerZero(Resource):
    """Any other admin page: worker 0's answer."""

    isLeaf = True

    def __init__(self, supervisor: Supervisor):
        super().__init__()
        self.supervisor = supervisor

    def render_GET(self, request):
        path = request.uri

        def answer(result):
            status, body = result
            if not request._disconnected:
                request.setResponseCode(status)
                if path.startswith(b"/routes"):
                    request.setHeader(b"content-type", b"application/json")
                elif path == b"/" or path.startswith(b"/?"):
                    request.setHeader(b"content-type", b"text/html; charset=utf-8")
                request.write(body)
                request.finish()

        def failed(_):
            if not request._disconnected:
                request.setResponseCode(503)
                request.write(b"worker 0 is not answering\n")
                request.finish()

        self.supervisor.ask(0, path).addCallbacks(answer, failed)
        return NOT_DONE_YET


class _AdminRoot(Resource):
    def __init__(self, supervisor: Supervisor):
        super().__init__()
        self.putChild(b"healthz", _Gather(supervisor, b"/healthz", _health))
        self.putChild(b"readyz", _Gather(supervisor, b"/readyz", _ready))
        self.putChild(b"metrics", _Gather(supervisor, b"/metrics", _metrics))
        self.fallback = _FromWorkerZero(supervisor)

    def getChild(self, name, request):
        return self.fallback


def supervisor_services(settings: dict, argv: list[str], reactor: Any):
    """The supervisor and its admin listener."""
    drain_time = float(settings.get("shutdown_delay", 5) or 0) + float(settings.get("shutdown_grace", 60) or 0)
    supervisor = Supervisor(int(settings["workers"]), argv, reactor, drain_time=drain_time)
    if settings.get("admin"):
        site = Site(_AdminRoot(supervisor))
        site.noisy = False
        site.log = lambda request: None
        # A child of the supervisor: it stops after the workers, so it answers while they drain.
        listen(settings["admin"], site, reactor, option="--admin").setServiceParent(supervisor)
    return supervisor, [supervisor]


__all__ = ["Supervisor", "parse_workers", "supervisor_services", "usable_cpus", "worker_arguments"]
