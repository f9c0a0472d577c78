"""ingressd's optional C accelerators (issue 24: the request path's per-request Python).

The project's metadata is in pyproject.toml; this file only declares the extension modules,
which setuptools cannot take from pyproject.toml alone. Every accelerator is optional: when
no C compiler or Python headers are at hand (or on PyPy, whose JIT runs the Python code
well and whose C-API emulation would be slower), pip installs ingressd without it and the
pure-Python fallback next to its user does the same work. ``INGRESSD_NO_ACCEL=1`` at install
time leaves them all out (to test the fallbacks as installed).
"""
import os
import platform

from setuptools import Extension, setup

# (module, C sources): each module's pure-Python twin is named in the module's own header.
ACCELERATORS: list[tuple[str, list[str]]] = [
    ("ingressd._logline", ["ingressd/_logline.c"]),  # twin: ingressd.logline.join_line_py
    ("ingressd.proxy._response_head", ["ingressd/proxy/_response_head.c"]),  # twin: ingressd/proxy/response_head.py
    ("ingressd.http._request_head", ["ingressd/http/_request_head.c"]),  # twin: request_head.py
    ("ingressd.proxy._backend_request", ["ingressd/proxy/_backend_request.c"]),  # twin: backend_request.py
    ("ingressd.proxy._request_facts", ["ingressd/proxy/_request_facts.c"]),  # twin: request_facts.py
    ("ingressd.tls._lean_steps", ["ingressd/tls/_lean_steps.c"]),  # twin: ingressd/tls/lean_steps.py
    ("ingressd.admin._fold_run", ["ingressd/admin/_fold_run.c"]),  # twin: ingressd/admin/fold_run.py
    ("ingressd.config._window", ["ingressd/config/_window.c"]),  # twin: ingressd.config.window.window_py
]


def extensions() -> list[Extension]:
    if platform.python_implementation() != "CPython" or os.environ.get("INGRESSD_NO_ACCEL"):
        return []
    return [Extension(name, sources, optional=True, extra_compile_args=["-O2"])
            for name, sources in ACCELERATORS]


setup(ext_modules=extensions())
