"""``--redis-secret NAMESPACE/NAME``: Redis credentials from a Secret, followed as it changes.

The Secret's key ``password`` (required) and ``username`` (optional: an ACL user; without it
``AUTH password`` authenticates the default user) replace any in the ``--redis`` URL. It is read
from the object store (the Kubernetes provider, or a Secret in the manifests), so a rotated
password reaches the client at once: new connections authenticate with it, and each one up
keeps serving until its replacement is (``RedisClient.use_credentials``). The client is started
only once the Secret has been read; until then, or while the Secret is missing or has no
``password``, ``not_ready_reason`` keeps ``/readyz`` failing and says why.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from twisted.python import log


def parse_ref(value: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` → (namespace, name)."""
    namespace, _, name = str(value).partition("/")
    if not namespace or not name or "/" in name:
        raise ValueError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def credentials(secret: dict | None) -> tuple[str, str] | str:
    """(username, password) from a Secret, or why there are none."""
    if secret is None:
        return "no such Secret"
    data = secret.get("data") or {}
    found = {}
    for key in ("username", "password"):
        value = data.get(key)
        if value is None:
            value = (secret.get("stringData") or {}).get(key)  # a manifest may use stringData
            if value is None:
                continue
            found[key] = str(value)
            continue
        try:
            found[key] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return f"its key {key} is not base64 of UTF-8 text"
    if not found.get("password"):
        return "it has no key password"
    return found.get("username", ""), found["password"]


class SecretCredentials:
    """Keeps a RedisClient's credentials those of the Secret ``ref`` in ``store``."""

    def __init__(self, store: Any, ref: tuple[str, str], client: Any):
        self.store = store
        self.ref = ref
        self.client = client
        self.problem: str | None = "not read yet"
        self.rotations = 0  # credentials changed after the first (metrics, tests)

    def start(self) -> None:
        self.store.observers.append(self.update)
        self.update()

    def stop(self) -> None:
        if self.update in self.store.observers:
            self.store.observers.remove(self.update)

    def update(self) -> None:
        secret = self.store.get("Secret", self.ref)
        if secret is None and not self.store.synced:
            return  # the first full read is not in yet: the Secret may still come
        found = credentials(secret)
        if isinstance(found, str):
            if found != self.problem:
                log.msg(f"ingressd: --redis-secret {self.shown}: {found}; "
                        + ("not ready until it is usable" if not self.client.started
                           else "keeping the credentials in use"))
            self.problem = found
            return
        self.problem = None
        if not self.client.started:
            self.client.use_credentials(*found)
            self.client.start()
            return
        if found != (self.client.url.username, self.client.url.password):
            self.rotations += 1
            log.msg(f"ingressd: --redis-secret {self.shown}: new credentials; reconnecting to Redis")
            self.client.use_credentials(*found)

    @property
    def shown(self) -> str:
        return "/".join(self.ref)

    def not_ready_reason(self) -> str | None:
        if self.problem is None or self.client.started:
            return None
        return f"--redis-secret {self.shown}: {self.problem}"
