"""Whether ingressd can honour one Ingress's ingress-nginx annotations: served, served with
differences, or not served.

``assess`` reads the annotations as written against the catalogue (``ingressd.compat.catalogue``) and
the names the loaded plugins own. An annotation ingressd does not honour is a *difference* when
ignoring it is harmless (or when the operator accepted that, by ``--ignore-annotation`` or the
Ingress's own ``ingressd.io/ignore-annotations``), and *blocking* otherwise: ignoring it would
widen access or send traffic elsewhere, so the Ingress is not served (never fail open). The
translator and ``ingressd check`` both call it, so they give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

from ingressd.compat.catalogue import (
    BOOL,
    HARMLESS,
    INT,
    NARROWS_ACCESS,
    NOT_NEEDED,
    PARTIAL,
    REFUSED,
    SIZE,
    WORD,
    Entry,
    lookup,
)
from ingressd.features import INGRESSD_PREFIX, NGINX_PREFIX, parse_bool, parse_size
from ingressd.snippets import SnippetError, parse_snippet

IGNORE_ANNOTATION = INGRESSD_PREFIX + "ignore-annotations"


@dataclass(frozen=True, slots=True)
class Problem:
    """One annotation of an Ingress that ingressd does not do exactly as ingress-nginx."""

    annotation: str  # the key as written, e.g. "nginx.ingress.kubernetes.io/auth-url"
    name: str  # without the prefix
    reason: str  # a sentence naming the annotation
    blocking: bool  # True: the Ingress is not served

    def __str__(self) -> str:
        return self.reason


def ignore_list(value: str) -> frozenset[str]:
    """The names in ``ingressd.io/ignore-annotations`` or ``--ignore-annotation``: with or without a prefix."""
    names = set()
    for item in value.split(","):
        item = item.strip()
        for prefix in (NGINX_PREFIX, INGRESSD_PREFIX):
            if item.startswith(prefix):
                item = item[len(prefix):]
        if item:
            names.add(item)
    return frozenset(names)


def assess(raw: Mapping[str, str], owned: Collection[str], ignored: Collection[str] = ()) -> tuple[Problem, ...]:
    """The problems with one Ingress's annotations ``raw``.

    ``owned``: the annotation names a loaded plugin declares (they are parsed and validated
    by their plugin, not here); ``ignored``: names the operator accepts ignoring controller-wide.
    """
    if not any(key.startswith((NGINX_PREFIX, INGRESSD_PREFIX)) for key in raw):
        return ()
    accepted = set(ignored)
    own_ignores = raw.get(IGNORE_ANNOTATION)
    if own_ignores is not None:
        accepted |= ignore_list(own_ignores)
    problems: list[Problem] = []
    for key in sorted(raw):
        if key.startswith(NGINX_PREFIX):
            name = key[len(NGINX_PREFIX):]
        elif key.startswith(INGRESSD_PREFIX):
            name = key[len(INGRESSD_PREFIX):]
            if key == IGNORE_ANNOTATION or name in owned:
                continue
            problems.append(Problem(key, name, f"annotation {key} is not known to ingressd and is ignored", False))
            continue
        else:
            continue
        if not raw[key].strip():
            continue  # ingress-nginx reads an empty value as absent
        entry = lookup(name)
        if name in owned and name in SNIPPET_CONTEXTS:
            problem = _snippet_problem(key, name, raw[key], accepted)
            if problem is not None:
                problems.append(problem)
                continue
        if name in owned:
            if entry is not None and entry.status == PARTIAL and not _asks_nothing(entry, raw, raw[key]):
                problems.append(Problem(key, name, f"annotation {key} is served with a difference: {entry.note}",
                                        False))
            continue
        if entry is None:
            problems.append(Problem(key, name, f"annotation {key} is not an ingress-nginx annotation; ignored", False))
            continue
        if entry.status == NOT_NEEDED or _asks_nothing(entry, raw, raw[key]):
            continue
        if entry.requires is not None and entry.requires not in owned:
            continue  # its switch is on and not honoured either: that one problem covers both
        problems.append(_unhonoured(key, entry, accepted))
    return tuple(problems)


def _unhonoured(key: str, entry: Entry, accepted: Collection[str]) -> Problem:
    name = entry.name
    effect = entry.effect
    if entry.status == REFUSED:
        what = f"{name} is never supported ({entry.note})" if entry.note else f"{name} is never supported"
    else:
        what = "it is not supported by ingressd" + (f" ({entry.note})" if entry.note else "")
    if effect == HARMLESS:
        return Problem(key, name, f"annotation {key} is not supported by ingressd and is ignored"
                                  + (f" ({entry.note})" if entry.note else "") + "; ignoring it is harmless", False)
    consequence = ("let in clients it keeps out" if effect == NARROWS_ACCESS
                   else "send traffic elsewhere, or otherwise, than it asks")
    if not entry.ignorable:
        return Problem(key, name, f"annotation {key}: {what}; the Ingress is not served until it is", True)
    if name in accepted:
        return Problem(key, name, f"annotation {key} is ignored as the operator asked (--ignore-annotation or "
                                  f"{IGNORE_ANNOTATION}): {what}, and serving without it may {consequence}",
                       False)
    return Problem(key, name, f"annotation {key}: {what}, and serving the Ingress without it would "
                              f"{consequence}; not served (accept that with --ignore-annotation {name} "
                              f"or the Ingress annotation {IGNORE_ANNOTATION}: \"{name}\")", True)


def _asks_nothing(entry: Entry, raw: Mapping[str, str], value: str) -> bool:
    """True when the value is ingress-nginx's default or the annotation's switch is off."""
    if entry.default is not None and same_value(entry, value, entry.default):
        return True
    if entry.requires is not None:
        switch = lookup(entry.requires)
        text = raw.get(INGRESSD_PREFIX + entry.requires, raw.get(NGINX_PREFIX + entry.requires))
        if text is None or switch is None or not text.strip():
            return True
        if switch.default is not None and same_value(switch, text, switch.default):
            return True
    return False


def same_value(entry: Entry, value: str, default: str) -> bool:
    """Whether ``value`` means the same as ``default`` to ingress-nginx (an unreadable value does not)."""
    value, default = value.strip(), default.strip()
    if entry.kind == BOOL:
        return _read(parse_bool, value) is not None and _read(parse_bool, value) == _read(parse_bool, default)
    if entry.kind == INT:
        return value.lstrip("-").isdigit() and int(value) == int(default)
    if entry.kind == SIZE:
        return _read(parse_size, value) is not None and _read(parse_size, value) == _read(parse_size, default)
    if entry.kind == WORD:
        return value.lower() == default.lower()
    return " ".join(value.split()) == " ".join(default.split())


def _read(parse, text: str):
    """What ``parse`` (features' readers of annotation values) makes of ``text``; None when it
    cannot read it."""
    try:
        return parse(text)
    except ValueError:  # AnnotationError included
        return None


# -- snippets -----------------------------------------------------------------------------

# The snippets ingressd reads as data (ingressd.snippets); the block each one's text is in.
SNIPPET_CONTEXTS = {"configuration-snippet": "location", "server-snippet": "server"}


def _snippet_problem(key: str, name: str, value: str, accepted: Collection[str]) -> Problem | None:
    """None when the parser honours the snippet; else why not, blocking unless the operator accepted it."""
    try:
        parse_snippet(value, SNIPPET_CONTEXTS[name])
    except SnippetError as exc:
        what = (f"{exc} (ingressd reads snippets as data and honours only a subset of nginx: "
                "see docs/migrating.md, \"Snippets\")")
        if name in accepted:
            return Problem(key, name, f"annotation {key} is ignored as the operator asked (--ignore-annotation or "
                                      f"{IGNORE_ANNOTATION}): {what}", False)
        return Problem(key, name, f"annotation {key} is not honoured: {what}; not served (accept ignoring it "
                                  f"with --ignore-annotation {name} or the Ingress annotation "
                                  f"{IGNORE_ANNOTATION}: \"{name}\")", True)
    return None
