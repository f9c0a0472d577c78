"""h2_settings.received_setting_error against h2's check of a setting a client sent a server."""

from __future__ import annotations

from h2.exceptions import InvalidSettingsValueError
from h2.settings import Settings
from hypothesis import given
from hypothesis import strategies as st

from ingressd.http import h2_settings
from ingressd.http.h2_frames import NO_ERROR

_BOUNDARIES = [0, 1, 2, 16383, 16384, 16385, 65535, 2**24 - 1, 2**24, 2**31 - 2, 2**31 - 1, 2**31, 2**32 - 1]


def _theirs(identifier, value):
    try:
        Settings(client=True).validate_received_setting(identifier, value)
    except InvalidSettingsValueError as error:
        return int(error.error_code)
    return NO_ERROR


def test_every_identifier_at_the_boundaries():
    for identifier in range(0x10):
        for value in _BOUNDARIES:
            assert h2_settings.received_setting_error(identifier, value) == _theirs(identifier, value), (identifier, value)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))
def test_any_setting(identifier, value):
    assert h2_settings.received_setting_error(identifier, value) == _theirs(identifier, value)


def test_defaults_are_h2s():
    theirs = Settings(client=True)
    for identifier, value in h2_settings.DEFAULTS.items():
        assert theirs[identifier] == value
