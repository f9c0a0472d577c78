"""Start-up checks of ``twistd ingressd``'s options: endpoints, paths, and what a mistake says.

Every check raises ``twisted.python.usage.UsageError`` with one line that names the option and
the value (``--manifests /nonexistent: no such file or directory``); ``ingressd.tap`` turns it
into that line on standard error and exit status 2. A listener that cannot start
(``ListenError``, raised by ``ingressd.proxy.transport.listen``'s services) is exit status 1.
Nothing here touches the reactor: the options are parsed before ingressd installs its own.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Iterable

from twisted.python import usage

USAGE_ERROR = 2  # a mistake on the command line or in --config
RUNTIME_ERROR = 1  # the options were fine, the machine said no (a port in use…)

ENDPOINT_OPTIONS = ("http", "https", "admin")
# Options naming files: checked at start, and read relative to a --config file's folder.
PATH_OPTIONS = ("manifests", "kubeconfig", "access-log", "temp-path")
PATH_OPTIONS += ("validating-webhook-certificate", "validating-webhook-key")  # ingressd.admission
_NOT_A_PATH = {"access-log": ("", "-", "off", "none", "false")}
_EXAMPLES = {"http": "tcp:8080", "https": "tcp:8443", "admin": "tcp:9180:interface=127.0.0.1"}


class ListenError(Exception):
    """A listener that could not start; the message names the option and the address."""


def endpoint(option: str, value: object) -> str | None:
    """``--http``/``--https``/``--admin``'s value as a Twisted server endpoint string: a bare
    port number is ``tcp:PORT``; empty (or None) means the listener is off. Anything Twisted
    cannot parse is a UsageError naming the option, with a correct example."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return ""
    if text.isdigit():
        text = f"tcp:{text}"
    from twisted.internet.endpoints import serverFromString

    try:
        # The endpoint is only built, never listened on; it keeps the reactor for later.
        serverFromString(_NO_REACTOR, text)
    except (ValueError, TypeError, KeyError, IndexError, OSError) as exc:
        reason = _reason(exc)
        example = _EXAMPLES.get(option, "tcp:8080")
        raise usage.UsageError(
            f"--{option} {value}: not a valid endpoint ({reason}); for example --{option} {example}"
        ) from None
    return text


def resolve(option: str, value: object, base: str) -> object:
    """A path option's value from a --config file, made relative to ``base`` (the file's folder)."""
    if option not in PATH_OPTIONS or not isinstance(value, str) or value in _NOT_A_PATH.get(option, ()):
        return value
    if os.path.isabs(os.path.expanduser(value)):
        return value
    return os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def check_paths(option: str, values: Iterable[object]) -> None:
    """Each path of ``option`` must exist (for ``--access-log``: its folder, the file is made)."""
    for value in values:
        if value is None or str(value).strip() in _NOT_A_PATH.get(option, ()):
            continue
        path = os.path.expanduser(str(value))
        if option == "access-log":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise usage.UsageError(f"--{option} {value}: no such directory: {folder}")
            continue
        if option == "temp-path":  # bodies beyond memory are written there
            if not os.path.isdir(path):
                raise usage.UsageError(f"--{option} {value}: no such directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise usage.UsageError(f"--{option} {value}: not writable")
            continue
        if not os.path.exists(path):
            raise usage.UsageError(f"--{option} {value}: no such file or directory")
        if not os.access(path, os.R_OK):
            raise usage.UsageError(f"--{option} {value}: not readable")


def fail(message: str, status: int) -> SystemExit:
    """Write ``message`` as one line on the process's real standard error; the SystemExit to raise."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"ingressd: {message}\n")
    stream.flush()
    return SystemExit(status)


def version_text() -> str:
    """ingressd's version and those of what it runs on (``--version``)."""
    from importlib.metadata import PackageNotFoundError, version

    import twisted

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    try:
        from OpenSSL import SSL

        openssl = SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode("ascii", "replace")
    except ImportError:
        openssl = "OpenSSL not available"
    return "\n".join([
        f"ingressd {installed('ingressd')}",
        f"Twisted {twisted.__version__}",
        f"pyOpenSSL {installed('pyOpenSSL')} ({openssl})",
        f"Python {sys.version.split()[0]} ({sys.implementation.name})",
    ])


def _reason(exc: Exception) -> str:
    """Twisted's complaint about an endpoint string, without Python's internals."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    reason = str(exc).rstrip(".") or type(exc).__name__
    number = re.match(r"invalid literal for int\(\) with base 10: (.*)", reason)
    if number:
        return f"expected a number, got {number.group(1)}"
    return re.sub(r"^_?\w+\(\) ", "", reason)  # "_parseTCP() got an unexpected keyword…"


class _NoReactor:
    """Stands for the reactor while an endpoint string is only parsed (never listened on)."""


_NO_REACTOR = _NoReactor()

__all__ = ["ListenError", "check_paths", "endpoint", "fail", "resolve", "version_text"]
