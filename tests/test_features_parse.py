"""The shared annotation value parsers, table-style: the spellings ingress-nginx (Go's strconv,
its validators) and nginx accept, and the ones they do not."""

import pytest

from ingressd.features import AnnotationError, parse_bool, parse_int, parse_size

# -- booleans: exactly Go's strconv.ParseBool --------------------------------------------

BOOLS = [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False),
]

NOT_BOOLS = [
    "yes", "no", "on", "off", "y", "n", "Yes", "ON",  # YAML 1.1 words, not ParseBool's
    "TrUe", "tRUE", "FaLsE", "fALSE",  # mixed case: ParseBool lists its spellings one by one
    " true", "true ", "\ttrue", "true\n",  # ParseBool does not trim
    "", "2", "-1", "01", "truee", "enabled",
]


@pytest.mark.parametrize("text,expected", BOOLS)
def test_bool_spellings(text, expected):
    assert parse_bool(text) is expected


@pytest.mark.parametrize("text", NOT_BOOLS)
def test_other_bool_spellings_are_refused_naming_the_accepted_ones(text):
    with pytest.raises(AnnotationError) as raised:
        parse_bool(text)
    message = str(raised.value)
    assert repr(text) in message
    for spelling in ("1, t, T, TRUE, true, True", "0, f, F, FALSE, false, False"):
        assert spelling in message


def test_bool_refuses_what_is_not_text():
    for value in (True, 1, None):
        with pytest.raises(AnnotationError):
            parse_bool(value)


# -- integers: Go's strconv.Atoi, then the caller's bounds --------------------------------

INTS = [
    ("0", 0), ("7", 7), ("60", 60), ("007", 7), ("+5", 5), ("-5", -5), ("-0", 0),
    ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -(2**63)),
]

NOT_INTS = [
    "", " 5", "5 ", "5\n", "60s", "1m", "1.5", "1e3", "0x10", "1_000", "++5", "+-5", "-", "+",
    "٣",  # an Arabic-Indic digit: str.isdigit says yes, Atoi says no
    "²",
    "9223372036854775808", "-9223372036854775809",  # beyond int64: Atoi's range error
]


@pytest.mark.parametrize("text,expected", INTS)
def test_int_spellings(text, expected):
    assert parse_int()(text) == expected


@pytest.mark.parametrize("text", NOT_INTS)
def test_other_int_spellings_are_refused(text):
    with pytest.raises(AnnotationError) as raised:
        parse_int()(text)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("low,high,text,ok", [
    (0, 10, "0", True), (0, 10, "10", True), (0, 10, "-1", False), (0, 10, "11", False),
    (1, None, "0", False), (None, 5, "-100", True), (None, 5, "+6", False),
])
def test_int_bounds(low, high, text, ok):
    parse = parse_int(low, high)
    if ok:
        assert parse(text) == int(text)
    else:
        with pytest.raises(AnnotationError, match="must be at"):
            parse(text)


# -- sizes: nginx's ngx_parse_offset (client_max_body_size) -------------------------------

SIZES = [
    ("0", 0), ("1", 1), ("512", 512), ("1024", 1024),
    ("8k", 8 * 1024), ("8K", 8 * 1024), ("1m", 1 << 20), ("1M", 1 << 20), ("1g", 1 << 30), ("1G", 1 << 30),
    ("0k", 0), ("0m", 0), ("016k", 16 * 1024),
    (" 1m ", 1 << 20), ("  8K", 8 * 1024),  # ingress-nginx trims surrounding spaces
    ("8589934591g", 8589934591 << 30),  # the largest g value within off_t
    ("9223372036854775807", 2**63 - 1),
]

NOT_SIZES = [
    "", " ", "k", "m", "-1", "+1", "1.5m", "1,5m", "1e6",
    "1b", "1B",  # ingress-nginx's SizeRegex lets b through; nginx refuses it
    "8mb", "1kb", "1t", "1T", "1 m", "8 k",  # units nginx has not; a space inside
    "1m\t", "\t1m", "1m\n",  # only spaces are trimmed
    "٣k",
    "8589934592g", "9223372036854775808",  # beyond off_t
]


@pytest.mark.parametrize("text,expected", SIZES)
def test_size_spellings(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", NOT_SIZES)
def test_other_size_spellings_are_refused(text):
    with pytest.raises(AnnotationError) as raised:
        parse_size(text)
    assert repr(text) in str(raised.value)


# -- the limit-* annotations, as rate_limit declares them with parse_int ------------------

LIMITS = [
    ({"limit-rps": "0"}, "limit-rps", 0),  # 0 = off, as ingress-nginx (limit_req only for > 0)
    ({"limit-rps": "+5"}, "limit-rps", 5),  # strconv.Atoi takes a sign
    ({"limit-rpm": "600"}, "limit-rpm", 600),
    ({"limit-connections": "0"}, "limit-connections", 0),
    ({"limit-burst-multiplier": "1"}, "limit-burst-multiplier", 1),
]

NOT_LIMITS = [
    {"limit-rps": "-1"},  # ingress-nginx: off; here refused (never fails open)
    {"limit-rps": "5 "}, {"limit-rps": "5r/s"}, {"limit-rpm": "1.5"}, {"limit-connections": "ten"},
    {"limit-burst-multiplier": "0"},  # nginx: "invalid burst value" for burst=0
]


@pytest.mark.parametrize("raw,name,value", LIMITS)
def test_limit_values(raw, name, value):
    from fakes import annotation_values
    from ingressd_plugins import rate_limit

    assert annotation_values(rate_limit, raw)[name] == value


@pytest.mark.parametrize("raw", NOT_LIMITS)
def test_bad_limit_values_reject_the_ingress(raw):
    from fakes import annotation_values
    from ingressd_plugins import rate_limit

    with pytest.raises(AnnotationError):
        annotation_values(rate_limit, raw)
