"""A CPU-time stack sampler for the real ``twistd ingressd`` (py-spy's default mode samples
wall-clock time and, on these machines, misattributes it).

Put this directory on PYTHONPATH and set ``INGRESSD_CPU_SAMPLE`` to a file name: Python
imports this module at start-up, and the process samples its own stack on CPU time
(``ITIMER_PROF``; asked for every millisecond, the kernel's tick makes it every 4-10 ms here:
run long enough for a few thousand samples). It writes its counts to ``FILE.PID`` every 200
samples and at exit: the number of samples on the first line, then one line per function
(self samples, total samples, name). Only samples taken inside the reactor's event handling
count, so start-up does not. ``bench/sampler/report.py FILE.PID CPU_US_PER_REQUEST`` turns
the counts into µs per request.

    INGRESSD_CPU_SAMPLE=/tmp/samples PYTHONPATH=bench/sampler python3 bench/bench.py \
        --only ingressd --scenario keepalive --seconds 20 --ingressd-args '--access-log off'
"""

import os

_OUT = os.environ.get("INGRESSD_CPU_SAMPLE")

if _OUT:
    import atexit
    import signal
    from collections import Counter

    _own: Counter = Counter()
    _total: Counter = Counter()
    _taken = [0]
    _names: dict = {}

    def _name(code) -> str:
        known = _names.get(code)
        if known is None:
            path = code.co_filename
            for marker in ("/ingressd/", "/ingressd_plugins/", "/site-packages/", "/lib/python"):
                at = path.rfind(marker)
                if at >= 0:
                    path = path[at + 1:]
                    break
            known = _names[code] = f"{path}:{code.co_firstlineno}({code.co_name})"
        return known

    def _on_tick(signum, frame) -> None:
        stack = []
        while frame is not None:
            stack.append(frame.f_code)
            frame = frame.f_back
        if not stack or not any(code.co_name in ("doPoll", "_doReadOrWrite", "runUntilCurrent", "doIteration", "_end_round")
                   for code in stack):
            return  # start-up, shutdown: not the request path
        _taken[0] += 1
        _own[_name(stack[0])] += 1
        for key in {_name(code) for code in stack}:
            _total[key] += 1
        if not _taken[0] % 200:  # written as it goes: a SIGKILL at the end of the run loses little
            _write()

    def _write() -> None:
        if not _taken[0]:
            return  # a process without a reactor (bench.py itself, its helpers)
        with open(f"{_OUT}.{os.getpid()}", "w") as out:
            out.write(f"{_taken[0]}\n")
            for key, count in _total.most_common():
                out.write(f"{_own[key]}\t{count}\t{key}\n")

    def _stop() -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)  # no SIGPROF once Python restores its default (fatal)
        _write()

    signal.signal(signal.SIGPROF, _on_tick)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
    atexit.register(_stop)
