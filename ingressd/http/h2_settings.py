"""HTTP/2 SETTINGS values (RFC 9113 6.5.2, RFC 8441 3): the defaults, and which received values are errors.

``received_setting_error`` is h2's check of a setting a client sends a server (its
``Settings.validate_received_setting``; tests/test_h2_settings.py compares every identifier
against it): the error code the connection closes with, or NO_ERROR. Unknown identifiers are
ignored, as RFC 9113 6.5.2 requires.
"""

from __future__ import annotations

from ingressd.http.h2_frames import FLOW_CONTROL_ERROR, NO_ERROR, PROTOCOL_ERROR

HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

# What a setting is until a SETTINGS frame changes it (RFC 9113 6.5.2; a client's ENABLE_PUSH).
DEFAULTS = {
    HEADER_TABLE_SIZE: 4096,
    ENABLE_PUSH: 1,
    INITIAL_WINDOW_SIZE: 65535,
    MAX_FRAME_SIZE: 16384,
    ENABLE_CONNECT_PROTOCOL: 0,
}


def received_setting_error(identifier: int, value: int) -> int:
    """The connection error a client's (identifier, value) is, or NO_ERROR."""
    if identifier == ENABLE_PUSH or identifier == ENABLE_CONNECT_PROTOCOL:
        return NO_ERROR if value in (0, 1) else PROTOCOL_ERROR
    if identifier == INITIAL_WINDOW_SIZE:
        return NO_ERROR if value <= 2**31 - 1 else FLOW_CONTROL_ERROR
    if identifier == MAX_FRAME_SIZE:
        return NO_ERROR if 16384 <= value <= 16777215 else PROTOCOL_ERROR
    return NO_ERROR  # values are unsigned 32-bit on the wire: MAX_HEADER_LIST_SIZE cannot be below 0
