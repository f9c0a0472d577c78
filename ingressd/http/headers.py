"""HTTP header lists: ordered (lower-case name, value) byte pairs, repeated names kept."""

from __future__ import annotations

from typing import Iterator

# Hop-by-hop headers (RFC 9110 7.6.1) and the framing headers the proxy re-creates itself.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"content-length",
    )
)


class Headers:
    """A mutable list of header pairs with names lower-cased once, at parse time."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[bytes, bytes]] | None = None):
        self.pairs = pairs if pairs is not None else []

    def get(self, name: bytes) -> bytes | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def get_all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.pairs if key == name]

    def add(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name, value))

    def set(self, name: bytes, value: bytes) -> None:
        self.remove(name)
        self.pairs.append((name, value))

    def remove(self, name: bytes) -> None:
        if any(key == name for key, _ in self.pairs):
            self.pairs = [(key, value) for key, value in self.pairs if key != name]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"Headers({self.pairs!r})"


def connection_tokens(pairs: list[tuple[bytes, bytes]]) -> set[bytes]:
    """The header names a Connection header lists (to be removed with it)."""
    tokens: set[bytes] = set()
    for key, value in pairs:
        if key == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token:
                    tokens.add(token)
    return tokens


def without_hop_by_hop(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop and framing headers and every header named in Connection."""
    kept = []
    listed = False
    for pair in pairs:
        if pair[0] in HOP_BY_HOP:
            listed = listed or pair[0] == b"connection"
        else:
            kept.append(pair)
    if listed:
        drop = connection_tokens(pairs)
        kept = [pair for pair in kept if pair[0] not in drop]
    return kept


def serialize(pairs) -> bytes:
    """``name: value\\r\\n`` per pair (an empty list gives b"")."""
    if not pairs:
        return b""
    return b"\r\n".join([b": ".join(pair) for pair in pairs]) + b"\r\n"
