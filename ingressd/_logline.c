/* ingressd._logline: an access-log line joined and escaped in one call (issue 24).
 *
 * Its pure-Python twin is ingressd.logline.join_line (same signature, same results; the
 * tests run every case against both and fuzz them against each other).
 *
 *     join_line(form, values) -> str
 *
 * form = (literals, kinds, tail, escape): a compiled log_format (ingressd.logformat_compile):
 * ``literals`` a tuple of n str (the text before each variable), ``kinds`` n bytes saying how
 * each value is written, ``tail`` the text after the last variable, ``escape`` 0 (nginx's
 * default), 1 (json) or 2 (none). ``values`` is the tuple of the n variables' raw values.
 * Kinds (None is always the missing mark: "-" with the default escaping, else ""):
 *   0 escaped: a str or bytes, escaped as below;
 *   1 plain: any object, as format(value) (digits, a clock: nothing to escape);
 *   2 seconds: a float or int, as '%.3f' % max(0.0, float(value)) ($request_time);
 *   3 status: an int, as '%03d' % value;
 *   4 json: a JSON value as json.dumps writes it: None as null (not the missing mark), str
 *     quoted with every character outside printable ASCII escaped (ensure_ascii), bytes
 *     decoded as UTF-8 with backslashreplace and quoted so, bool, int and float (NaN and
 *     the infinities as json.dumps writes them);
 *   5 json seconds: a float or int as json.dumps(round(value, 6)), None as null;
 *   6 utc time: a float (a time.time()) as YYYY-mm-ddTHH:MM:SS.mmm in UTC (milliseconds
 *     truncated), the part to the second remembered until the second changes;
 *   7 request: an object (the exchange) whose ``method``, ``request_uri`` and ``version`` are
 *     bytes, as nginx's $request (``method + b' ' + request_uri + b' HTTP/' + version``, version
 *     b"2" written as "2.0"), escaped as kind 0: the line read in C, without three concatenations;
 *     request_uri read as ingressd's Exchange's property computes it (``request.target`` up to a
 *     '#') when the object has a ``request`` whose ``target`` is bytes (request_uri_of).
 *
 * Escaping, as ngx_http_log_module writes a variable's value:
 *   default: '"', '\\' and bytes < 0x20 or >= 0x7F as \xHH (a str's UTF-8 bytes, its
 *            surrogateescape'd bytes as themselves); None is "-".
 *   json:    '"' '\\' \n \r \t \b \f as two characters, other bytes < 0x20 as \u00XX, the rest
 *            unchanged (bytes that are not UTF-8 as surrogateescape characters); None is "".
 *   none:    values as they are (bytes decoded as UTF-8 with surrogateescape); None is "".
 *
 *     join_line_into(form, values, buffer) -> int
 *
 * the same line's UTF-8 bytes (a str line's surrogateescape'd characters as their bytes) appended
 * to the LineBuffer ``buffer`` (below: the access log's waiting lines in one buffer); True, or
 * False when its byte bound dropped the line; nothing appended when the line fails (twin:
 * join_line_into_py, LineBufferPy).
 *
 *     header_values(headers, names) -> tuple
 *
 * the values of the header names ``names`` (a tuple) in ``headers`` (ingressd.http.headers.Headers)
 * in one pass over its pairs: each the first pair's value whose name equals it, else None (what
 * ``headers.get(name)`` gives); when ``headers.pairs`` is not a list of 2-tuples, each is
 * ``headers.get(name)``. The access log reads its lines' headers so (twin: header_values_py).
 *
 * The line is built in two passes: each piece is found (a literal, the value itself when it
 * needs no escaping, else a new escaped str), then the result is allocated once at its exact
 * size and width and the pieces copied in. Only the CPython C API is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>
#include <time.h>

enum { ESCAPE_DEFAULT = 0, ESCAPE_JSON = 1, ESCAPE_NONE = 2 };
enum { KIND_ESCAPED = 0, KIND_PLAIN = 1, KIND_SECONDS = 2, KIND_STATUS = 3, KIND_JSON = 4,
       KIND_JSON_SECONDS = 5, KIND_UTC_TIME = 6, KIND_REQUEST = 7 };
#define STACK_PIECES 96 /* 2n + 1 pieces; longer templates allocate */

static const char HEX[] = "0123456789ABCDEF";
static const char LOWER_HEX[] = "0123456789abcdef";
static PyObject *DASH;  /* "-" */
static PyObject *NULL_TEXT; /* "null" */
static PyObject *EMPTY; /* "" */

/* A str of ``size`` ASCII characters copied from ``text`` (no UTF-8 decoding: the caller's
 * text is digits, a clock or a dot). */
static PyObject *
ascii_text(const char *text, Py_ssize_t size)
{
    PyObject *out = PyUnicode_New(size, 127);
    if (out != NULL)
        memcpy(PyUnicode_1BYTE_DATA(out), text, size);
    return out;
}

/* x * 10^places rounded to an integer as '%.3f' (places 3) or '%.6f' (places 6) rounds a double
 * 0 < x < 1e9, into *count: the exact binary value rounded, ties to even (also what round(x,
 * places) rounds: dtoa's correctly rounded mode 3). The double is m * 2^e exactly (m the 53-bit
 * significand), so x * 10^places is m * 5^places / 2^(-e - places), an integer quotient and
 * remainder in 128 bits. Returns 1, or 0 when x is outside what this handles (zero, subnormal,
 * from 1e9, below ~1e-17 (6 places) or ~1e-20 (3 places), no 128-bit integers). */
static int
fixed_count(double x, int places, unsigned long long *count)
{
#ifdef __SIZEOF_INT128__
    if (!(x > 0.0 && x < 1e9) || (places != 3 && places != 6))
        return 0;
    unsigned long long bits;
    memcpy(&bits, &x, sizeof(bits));
    int biased = (int)((bits >> 52) & 0x7ff);
    if (biased == 0)
        return 0; /* subnormal */
    unsigned long long significand = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    int shift = 1075 - biased - places; /* x * 10^places = significand * 5^places / 2^shift */
    if (shift <= 0 || shift >= 120)
        return 0;
    unsigned __int128 n = (unsigned __int128)significand * (places == 3 ? 125u : 15625u);
    unsigned __int128 q = n >> shift, rest = n - (q << shift), half = (unsigned __int128)1 << (shift - 1);
    if (rest > half || (rest == half && (q & 1)))
        q++;
    *count = (unsigned long long)q; /* below 1e9 * 1e6 + 1 */
    return 1;
#else
    (void)x;
    (void)places;
    (void)count;
    return 0;
#endif
}

/* '%.3f' (places 3) or '%.6f' (places 6) of a double 0 < x < 1e9 written into ``out`` (40 chars at
 * least), as Python writes it (fixed_count's rounding). Returns the length, or -1 when x is
 * outside what fixed_count handles: the caller then asks PyOS_double_to_string. */
static int
fixed_text(double x, int places, char *out)
{
    unsigned long long value;
    if (!fixed_count(x, places, &value))
        return -1;
    char digits[32];
    int count = 0, length = 0, i;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (count <= places)
        digits[count++] = '0'; /* a digit before the point at least */
    for (i = count - 1; i >= places; i--)
        out[length++] = digits[i];
    out[length++] = '.';
    for (i = places - 1; i >= 0; i--)
        out[length++] = digits[i];
    return length;
}

/* json.dumps(round(k / 10^6, 6)) for k = 0..100, i.e. float.__repr__(k / 1e6) (k / 1e6 is the
 * double nearest k * 10^-6, as round() returns it): "0.0", "1e-06", ..., "9.9e-05", "0.0001";
 * made at import (PyInit__logline). */
#define SMALL_MICROS 101
static char small_json_text[SMALL_MICROS][16];
static unsigned char small_json_size[SMALL_MICROS];

/* json.dumps(round(x, 6)) of a float written into ``out`` (40 chars at least) for the usual
 * durations: 0 < x < 10^6 s. From 10^-4 s the shortest repr of the rounded float is its 6-decimal
 * form without trailing zeros; below, round(x, 6) is k / 10^6 for k = fixed_count(x, 6) (0..100),
 * whose repr is small_json_text[k] ("5e-05": a request through a nearby backend). Returns the
 * length, or -1 for other values (zero, negative, NaN, from 10^6, subnormal or below ~1e-17,
 * no 128-bit integers): the caller then rounds and asks repr. */
static int
json_seconds_text(double x, char *out)
{
    if (x >= 0.0001 && x < 1e6) {
        int size = fixed_text(x, 6, out);
        if (size <= 0)
            return -1;
        while (out[size - 1] == '0')
            size--;
        if (out[size - 1] == '.')
            out[size++] = '0'; /* "12." -> "12.0" */
        return size;
    }
    unsigned long long micros;
    if (!(x > 0.0 && x < 0.0001) || !fixed_count(x, 6, &micros) || micros >= SMALL_MICROS)
        return -1;
    memcpy(out, small_json_text[micros], small_json_size[micros]);
    return small_json_size[micros];
}

/* str(value) for an exact int that fits a long long, its digits written here (what
 * format(value) and repr(value) give it); NULL without an error when it does not fit (the
 * caller then asks Python). */
/* A long long's decimal digits (a minus sign first when negative) written backwards ending at
 * ``end``; returns where they start (at most 20 characters before ``end``). */
static inline char *
decimal_digits(long long number, char *end)
{
    char *at = end;
    unsigned long long rest = number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
    do {
        *--at = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (number < 0)
        *--at = '-';
    return at;
}

static PyObject *
int_text(PyObject *value)
{
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return NULL;
    }
    char text[24];
    char *at = decimal_digits(number, text + sizeof(text));
    return ascii_text(at, text + sizeof(text) - at);
}

static inline int
default_needs(unsigned int c)
{
    return c < 0x20 || c >= 0x7F || c == '"' || c == '\\';
}

/* The length of ``data``'s leading run of bytes that need no escaping (printable ASCII other than
 * '"' and '\\': not default_needs, which is also json_plain), ``size`` when all are such. Eight
 * bytes a step: a word is tested for a byte below 0x20, from 0x7F, '"' or '\\' at once (the bit
 * tests below are exact for "some byte is"; which byte is found by the byte loop after). */
static inline Py_ssize_t
clean_prefix(const unsigned char *data, Py_ssize_t size)
{
    const unsigned long long ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    Py_ssize_t i = 0;
    for (; i + 8 <= size; i += 8) {
        unsigned long long x, quote, slash;
        memcpy(&x, data + i, 8);
        quote = x ^ (ones * '"');
        slash = x ^ (ones * '\\');
        if (((x - ones * 0x20) & ~x & highs) /* a byte below 0x20 */
            | (((x + ones) | x) & highs)      /* a byte from 0x7F (0x7F + 1 sets the high bit) */
            | ((quote - ones) & ~quote & highs) | ((slash - ones) & ~slash & highs))
            break;
    }
    for (; i < size && !default_needs(data[i]); i++)
        ;
    return i;
}

/* nginx's default escaping of raw bytes: a new ASCII str. */
static PyObject *
escape_default_bytes(const unsigned char *data, Py_ssize_t size)
{
    Py_ssize_t extra = 0, i;
    if (size > PY_SSIZE_T_MAX / 4)
        return PyErr_NoMemory();
    for (i = 0; i < size; i++)
        if (default_needs(data[i]))
            extra += 3;
    PyObject *out = PyUnicode_New(size + extra, 127);
    if (out == NULL)
        return NULL;
    Py_UCS1 *w = PyUnicode_1BYTE_DATA(out);
    for (i = 0; i < size; i++) {
        unsigned char c = data[i];
        if (default_needs(c)) {
            *w++ = '\\';
            *w++ = 'x';
            *w++ = HEX[c >> 4];
            *w++ = HEX[c & 15];
        }
        else
            *w++ = c;
    }
    return out;
}

/* The default escaping of a str or bytes value: a new reference (the value itself when it
 * needs nothing escaped). */
static PyObject *
write_default(PyObject *value)
{
    if (PyBytes_Check(value)) {
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(value);
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        if (clean_prefix(data, size) < size)
            return escape_default_bytes(data, size);
        Py_INCREF(value); /* printable ASCII: copied as it is */
        return value;
    }
    if (PyUnicode_IS_ASCII(value)) {
        const Py_UCS1 *data = PyUnicode_1BYTE_DATA(value);
        Py_ssize_t size = PyUnicode_GET_LENGTH(value);
        if (clean_prefix(data, size) < size)
            return escape_default_bytes(data, size);
        Py_INCREF(value);
        return value;
    }
    /* Not ASCII: its UTF-8 bytes, each from 0x80 escaped (a lone surrogate that is not a
     * surrogateescape'd byte raises, as str.encode does). */
    PyObject *encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape");
    if (encoded == NULL)
        return NULL;
    PyObject *out = escape_default_bytes((const unsigned char *)PyBytes_AS_STRING(encoded),
                                         PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return out;
}

static inline int
json_needs(Py_UCS4 c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* ngx_escape_json over a str: a new reference (the str itself when nothing needs escaping). */
static PyObject *
escape_json_str(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), extra = 0, i;
    for (i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (json_needs(c)) {
            if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
                extra += 1;
            else
                extra += 5;
        }
    }
    if (extra == 0) {
        Py_INCREF(text);
        return text;
    }
    if (size > PY_SSIZE_T_MAX / 8)
        return PyErr_NoMemory();
    Py_UCS4 maxchar = PyUnicode_MAX_CHAR_VALUE(text);
    PyObject *out = PyUnicode_New(size + extra, maxchar < 127 ? 127 : maxchar);
    if (out == NULL)
        return NULL;
    int out_kind = PyUnicode_KIND(out);
    void *out_data = PyUnicode_DATA(out);
    Py_ssize_t w = 0;
    for (i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!json_needs(c)) {
            PyUnicode_WRITE(out_kind, out_data, w++, c);
            continue;
        }
        Py_UCS4 second = 0;
        switch (c) {
        case '"': second = '"'; break;
        case '\\': second = '\\'; break;
        case '\n': second = 'n'; break;
        case '\r': second = 'r'; break;
        case '\t': second = 't'; break;
        case '\b': second = 'b'; break;
        case '\f': second = 'f'; break;
        }
        PyUnicode_WRITE(out_kind, out_data, w++, '\\');
        if (second) {
            PyUnicode_WRITE(out_kind, out_data, w++, second);
        }
        else {
            PyUnicode_WRITE(out_kind, out_data, w++, 'u');
            PyUnicode_WRITE(out_kind, out_data, w++, '0');
            PyUnicode_WRITE(out_kind, out_data, w++, '0');
            PyUnicode_WRITE(out_kind, out_data, w++, HEX[(c >> 4) & 15]);
            PyUnicode_WRITE(out_kind, out_data, w++, HEX[c & 15]);
        }
    }
    return out;
}

/* bytes as text: ASCII as it is, else UTF-8 with surrogateescape (a new str). */
static PyObject *
bytes_text(PyObject *value)
{
    return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), "surrogateescape");
}

/* A str or bytes value for escape=json or escape=none: a new reference to a str, or to the
 * bytes themselves when they are ASCII needing nothing escaped. */
static PyObject *
write_text(PyObject *value, int escape)
{
    if (PyBytes_Check(value)) {
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(value);
        Py_ssize_t size = PyBytes_GET_SIZE(value), i;
        int clean = 1;
        for (i = 0; i < size; i++) {
            unsigned char c = data[i];
            if (c >= 0x80 || (escape == ESCAPE_JSON && json_needs(c))) {
                clean = 0;
                break;
            }
        }
        if (clean) {
            Py_INCREF(value);
            return value;
        }
        PyObject *text = bytes_text(value);
        if (text == NULL || escape == ESCAPE_NONE)
            return text;
        PyObject *out = escape_json_str(text);
        Py_DECREF(text);
        return out;
    }
    if (escape == ESCAPE_NONE) {
        Py_INCREF(value);
        return value;
    }
    return escape_json_str(value);
}

/* '%.3f' % max(0.0, value) for a float or an int. */
static PyObject *
seconds_text(PyObject *value)
{
    double number;
    if (PyFloat_CheckExact(value))
        number = PyFloat_AS_DOUBLE(value);
    else if (PyFloat_Check(value) || PyLong_Check(value)) {
        number = PyFloat_AsDouble(value); /* OverflowError beyond a double, as float() */
        if (number == -1.0 && PyErr_Occurred())
            return NULL;
    }
    else {
        PyErr_Format(PyExc_TypeError, "a seconds value must be float or int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    if (!(number > 0.0))
        number = 0.0; /* max(0.0, value): also for -0.0 and NaN */
    char fixed[40];
    int fixed_size = fixed_text(number, 3, fixed);
    if (fixed_size > 0)
        return ascii_text(fixed, fixed_size);
    char *text = PyOS_double_to_string(number, 'f', 3, 0, NULL);
    if (text == NULL)
        return NULL;
    PyObject *out = ascii_text(text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return out;
}

/* '%03d' % value for an int. */
static PyObject *
status_text(PyObject *value)
{
    static PyObject *format = NULL;
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a status must be int, not %.100s", Py_TYPE(value)->tp_name);
        return NULL;
    }
    int overflow = 1;
    long long number = 0;
    if (PyLong_CheckExact(value)) {
        number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred())
            return NULL;
    }
    if (!overflow && number >= 0 && number <= 999) { /* every HTTP status: three digits */
        char text[3] = {(char)('0' + number / 100), (char)('0' + number / 10 % 10), (char)('0' + number % 10)};
        return ascii_text(text, 3);
    }
    if (!overflow) {
        char text[32];
        int size = snprintf(text, sizeof(text), "%03lld", number);
        if (size < 0 || size >= (int)sizeof(text)) {
            PyErr_SetString(PyExc_SystemError, "status formatting failed");
            return NULL;
        }
        return PyUnicode_FromStringAndSize(text, size);
    }
    /* Beyond a long long, or a subclass of int (bool, an IntEnum): Python's own formatting. */
    if (format == NULL && (format = PyUnicode_InternFromString("%03d")) == NULL)
        return NULL;
    return PyUnicode_Format(format, value);
}

static inline int
json_plain(Py_UCS4 c)
{
    return c >= ' ' && c <= '~' && c != '"' && c != '\\';
}

/* json's encode_basestring_ascii: a str as a quoted JSON string of ASCII characters. */
static PyObject *
json_quote(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), length = 2, i;
    if (size > (PY_SSIZE_T_MAX - 2) / 12)
        return PyErr_NoMemory();
    for (i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (json_plain(c))
            length += 1;
        else if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f')
            length += 2;
        else if (c >= 0x10000)
            length += 12; /* a surrogate pair */
        else
            length += 6;
    }
    PyObject *out = PyUnicode_New(length, 127);
    if (out == NULL)
        return NULL;
    Py_UCS1 *w = PyUnicode_1BYTE_DATA(out);
    *w++ = '"';
    for (i = 0; i < size; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (json_plain(c)) {
            *w++ = (Py_UCS1)c;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; continue;
        case '\\': *w++ = '\\'; continue;
        case '\n': *w++ = 'n'; continue;
        case '\r': *w++ = 'r'; continue;
        case '\t': *w++ = 't'; continue;
        case '\b': *w++ = 'b'; continue;
        case '\f': *w++ = 'f'; continue;
        }
        if (c >= 0x10000) {
            Py_UCS4 v = c - 0x10000;
            Py_UCS4 high = 0xd800 | ((v >> 10) & 0x3ff);
            *w++ = 'u';
            *w++ = LOWER_HEX[(high >> 12) & 15];
            *w++ = LOWER_HEX[(high >> 8) & 15];
            *w++ = LOWER_HEX[(high >> 4) & 15];
            *w++ = LOWER_HEX[high & 15];
            *w++ = '\\';
            c = 0xdc00 | (v & 0x3ff);
        }
        *w++ = 'u';
        *w++ = LOWER_HEX[(c >> 12) & 15];
        *w++ = LOWER_HEX[(c >> 8) & 15];
        *w++ = LOWER_HEX[(c >> 4) & 15];
        *w++ = LOWER_HEX[c & 15];
    }
    *w++ = '"';
    return out;
}

/* A value as json.dumps writes it (str, bytes as UTF-8 with backslashreplace, bool, int,
 * float); None is null. A str or bytes of printable ASCII without '"' or '\\' is returned
 * itself with *quoted set: the caller writes the quotes around it (no copy). */
static PyObject *
json_value(PyObject *value, int *quoted)
{
    if (value == Py_None) {
        Py_INCREF(NULL_TEXT);
        return NULL_TEXT;
    }
    if (PyUnicode_Check(value)) {
        if (PyUnicode_IS_ASCII(value)) {
            const Py_UCS1 *data = PyUnicode_1BYTE_DATA(value);
            Py_ssize_t size = PyUnicode_GET_LENGTH(value);
            if (clean_prefix(data, size) == size) { /* json_plain: the bytes default_needs leaves */
                *quoted = 1;
                Py_INCREF(value);
                return value;
            }
        }
        return json_quote(value);
    }
    if (PyBytes_Check(value)) {
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(value);
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        if (clean_prefix(data, size) == size) {
            *quoted = 1;
            Py_INCREF(value);
            return value;
        }
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
                                              "backslashreplace");
        if (text == NULL)
            return NULL;
        PyObject *out = json_quote(text);
        Py_DECREF(text);
        return out;
    }
    if (PyBool_Check(value))
        return PyUnicode_FromString(value == Py_True ? "true" : "false");
    if (PyLong_CheckExact(value)) {
        PyObject *out = int_text(value);
        if (out != NULL || PyErr_Occurred())
            return out;
    }
    if (PyLong_Check(value))
        return PyLong_Type.tp_repr(value);
    if (PyFloat_Check(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (Py_IS_NAN(number))
            return PyUnicode_FromString("NaN");
        if (Py_IS_INFINITY(number))
            return PyUnicode_FromString(number > 0 ? "Infinity" : "-Infinity");
        return PyFloat_Type.tp_repr(value);
    }
    PyErr_Format(PyExc_TypeError, "a JSON log value must be str, bytes, bool, int, float or None, not %.100s",
                 Py_TYPE(value)->tp_name);
    return NULL;
}

/* json.dumps(round(value, 6)) for a float or int: a float above zero and below 10^6 s written by
 * json_seconds_text, else by rounding and repr. */
static PyObject *
json_seconds(PyObject *value)
{
    if (value == Py_None) {
        Py_INCREF(NULL_TEXT);
        return NULL_TEXT;
    }
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        char fixed[40];
        int fixed_size = json_seconds_text(number, fixed);
        if (fixed_size > 0)
            return ascii_text(fixed, fixed_size);
        if (number >= 0.0001 && number < 1e6) {
            char *text = PyOS_double_to_string(number, 'f', 6, 0, NULL);
            if (text == NULL)
                return NULL;
            size_t size = strlen(text);
            while (size > 0 && text[size - 1] == '0')
                size--;
            PyObject *out;
            if (size > 0 && text[size - 1] == '.') {
                text[size] = '0'; /* "12." -> "12.0": the '0' stripped there */
                out = PyUnicode_FromStringAndSize(text, size + 1);
            }
            else
                out = PyUnicode_FromStringAndSize(text, size);
            PyMem_Free(text);
            return out;
        }
    }
    else if (!PyFloat_Check(value) && !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a seconds value must be float or int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    PyObject *rounded = PyObject_CallMethod(value, "__round__", "i", 6);
    if (rounded == NULL)
        return NULL;
    int quoted = 0; /* a number: never quoted */
    PyObject *out = json_value(rounded, &quoted);
    Py_DECREF(rounded);
    return out;
}

/* The UTC time of a time.time() to the millisecond: time.strftime("%Y-%m-%dT%H:%M:%S",
 * time.gmtime(int(now))) + ".%03d" % int((now - int(now)) * 1000). */
static long long cached_second;
static char cached_text[64];
static size_t cached_size = 0; /* 0: nothing cached yet */

/* The UTC second's text (to the second) made into the cache: 0, or -1 with an error set. */
static int
utc_second(long long second)
{
    time_t seconds = (time_t)second;
    struct tm parts;
    if (gmtime_r(&seconds, &parts) == NULL) {
        PyErr_SetString(PyExc_OverflowError, "timestamp out of range");
        return -1;
    }
    size_t size = strftime(cached_text, sizeof(cached_text), "%Y-%m-%dT%H:%M:%S", &parts);
    if (size == 0) {
        cached_size = 0;
        PyErr_SetString(PyExc_ValueError, "time formatting failed");
        return -1;
    }
    cached_size = size;
    cached_second = second;
    return 0;
}

/* utc_time's text written into ``out`` (72 chars at least) for the usual time: an exact float
 * after 1970 in the cached second. Returns the length, or -1 with no error set (the caller then
 * asks utc_time, which makes the second's text and writes the same characters). */
static int
utc_direct(PyObject *value, char *out)
{
    if (!PyFloat_CheckExact(value) || cached_size == 0)
        return -1;
    double now = PyFloat_AS_DOUBLE(value);
    if (!(now >= 0.0 && now < 1e17))
        return -1;
    long long second = (long long)now; /* trunc: now >= 0 */
    if (second != cached_second)
        return -1;
    int milliseconds = (int)((now - (double)second) * 1000);
    if (milliseconds < 0 || milliseconds > 999)
        return -1;
    memcpy(out, cached_text, cached_size);
    out[cached_size] = '.';
    out[cached_size + 1] = (char)('0' + milliseconds / 100);
    out[cached_size + 2] = (char)('0' + milliseconds / 10 % 10);
    out[cached_size + 3] = (char)('0' + milliseconds % 10);
    return (int)cached_size + 4;
}

static PyObject *
utc_time(PyObject *value)
{
    if (!PyFloat_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a time must be float, not %.100s", Py_TYPE(value)->tp_name);
        return NULL;
    }
    double now = PyFloat_AS_DOUBLE(value);
    if (!isfinite(now)) {
        PyErr_SetString(PyExc_ValueError, "a time must be finite");
        return NULL;
    }
    double whole = trunc(now);
    if (whole < -1e17 || whole > 1e17) { /* beyond any year gmtime writes */
        PyErr_SetString(PyExc_OverflowError, "timestamp out of range");
        return NULL;
    }
    long long second = (long long)whole;
    if ((cached_size == 0 || second != cached_second) && utc_second(second) < 0)
        return NULL;
    int milliseconds = (int)((now - (double)second) * 1000);
    if (milliseconds >= 0 && milliseconds <= 999) { /* a time after 1970: its digits written here */
        char text[72];
        memcpy(text, cached_text, cached_size);
        text[cached_size] = '.';
        text[cached_size + 1] = (char)('0' + milliseconds / 100);
        text[cached_size + 2] = (char)('0' + milliseconds / 10 % 10);
        text[cached_size + 3] = (char)('0' + milliseconds % 10);
        return ascii_text(text, (Py_ssize_t)cached_size + 4);
    }
    char text[96];
    int size = snprintf(text, sizeof(text), "%.*s.%03d", (int)cached_size, cached_text, milliseconds);
    if (size < 0 || size >= (int)sizeof(text)) {
        PyErr_SetString(PyExc_SystemError, "time formatting failed");
        return NULL;
    }
    return PyUnicode_FromStringAndSize(text, size);
}

static PyObject *METHOD_NAME, *REQUEST_URI_NAME, *VERSION_NAME, *PAIRS_NAME, *GET_NAME; /* interned */
static PyObject *REQUEST_NAME, *TARGET_NAME; /* interned */

/* $request's URI: ``value.request.target`` up to a '#' when the value has a ``request`` whose
 * ``target`` is bytes (ingressd's Exchange: what its ``request_uri`` property gives, without the
 * property's Python frame; tests/test_logline.py compares the two), else ``value.request_uri``.
 * A new reference, or NULL with an error set. */
static PyObject *
request_uri_of(PyObject *value)
{
    PyObject *request = PyObject_GetAttr(value, REQUEST_NAME);
    if (request == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        return PyObject_GetAttr(value, REQUEST_URI_NAME);
    }
    PyObject *target = PyObject_GetAttr(request, TARGET_NAME);
    Py_DECREF(request);
    if (target == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return NULL;
        PyErr_Clear();
        return PyObject_GetAttr(value, REQUEST_URI_NAME);
    }
    if (!PyBytes_CheckExact(target)) {
        Py_DECREF(target);
        return PyObject_GetAttr(value, REQUEST_URI_NAME);
    }
    const char *data = PyBytes_AS_STRING(target);
    const char *hash = memchr(data, '#', PyBytes_GET_SIZE(target));
    if (hash == NULL)
        return target;
    PyObject *uri = PyBytes_FromStringAndSize(data, hash - data);
    Py_DECREF(target);
    return uri;
}

/* Kind 7's three parts read off ``value`` into ``parts`` (new references to bytes: method,
 * request_uri, version); 0, or -1 with an error set and nothing held. */
static int
request_parts(PyObject *value, PyObject *parts[3])
{
    PyObject *names[3] = {METHOD_NAME, REQUEST_URI_NAME, VERSION_NAME};
    int i;
    parts[0] = parts[1] = parts[2] = NULL;
    for (i = 0; i < 3; i++) {
        parts[i] = i == 1 ? request_uri_of(value) : PyObject_GetAttr(value, names[i]);
        if (parts[i] == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError)) { /* not an exchange: a wrong value */
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError, "$request's value must have method, request_uri and "
                             "version, not %.100s", Py_TYPE(value)->tp_name);
            }
            goto fail;
        }
        if (!PyBytes_Check(parts[i])) {
            PyErr_Format(PyExc_TypeError, "$request's parts must be bytes, not %.100s",
                         Py_TYPE(parts[i])->tp_name);
            goto fail;
        }
    }
    return 0;
fail:
    for (i = 0; i < 3; i++)
        Py_CLEAR(parts[i]);
    return -1;
}

/* Write "METHOD URI HTTP/VERSION" at ``at`` (room for all of it); the end of what it wrote. */
static char *
put_request(char *at, PyObject *parts[3], const char *version_text, Py_ssize_t version)
{
    Py_ssize_t method = PyBytes_GET_SIZE(parts[0]), uri = PyBytes_GET_SIZE(parts[1]);
    memcpy(at, PyBytes_AS_STRING(parts[0]), method);
    at += method;
    *at++ = ' ';
    memcpy(at, PyBytes_AS_STRING(parts[1]), uri);
    at += uri;
    memcpy(at, " HTTP/", 6);
    at += 6;
    memcpy(at, version_text, version);
    return at + version;
}

/* Kind 7: the bytes of $request read off ``value`` (see the top of the file); a new reference. */
static PyObject *
request_line(PyObject *value)
{
    PyObject *parts[3], *out = NULL;
    int i;
    if (request_parts(value, parts) < 0)
        return NULL;
    Py_ssize_t method = PyBytes_GET_SIZE(parts[0]), uri = PyBytes_GET_SIZE(parts[1]);
    Py_ssize_t version = PyBytes_GET_SIZE(parts[2]);
    int two = version == 1 && PyBytes_AS_STRING(parts[2])[0] == '2';
    Py_ssize_t tail = two ? 3 : version; /* "2.0" for HTTP/2 */
    if (method > PY_SSIZE_T_MAX / 4 || uri > PY_SSIZE_T_MAX / 4 || tail > PY_SSIZE_T_MAX / 4) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, method + 1 + uri + 6 + tail);
    if (out == NULL)
        goto done;
    put_request(PyBytes_AS_STRING(out), parts, two ? "2.0" : PyBytes_AS_STRING(parts[2]), tail);
done:
    for (i = 0; i < 3; i++)
        Py_XDECREF(parts[i]);
    return out;
}

/* One piece of the line: a new reference to a str, or to bytes that are all ASCII;
 * *quoted set when it is to be written between double quotes. */
static PyObject *
piece_of(PyObject *value, int kind, int escape, int *quoted)
{
    if (kind == KIND_JSON)
        return json_value(value, quoted);
    if (kind == KIND_UTC_TIME)
        return utc_time(value);
    if (kind == KIND_JSON_SECONDS)
        return json_seconds(value);
    if (value == Py_None) {
        PyObject *mark = escape == ESCAPE_DEFAULT ? DASH : EMPTY;
        Py_INCREF(mark);
        return mark;
    }
    switch (kind) {
    case KIND_ESCAPED:
        break;
    case KIND_REQUEST: {
        PyObject *request = request_line(value);
        if (request == NULL)
            return NULL;
        PyObject *out = escape == ESCAPE_DEFAULT ? write_default(request) : write_text(request, escape);
        Py_DECREF(request);
        return out;
    }
    case KIND_PLAIN:
        if (PyUnicode_CheckExact(value)) {
            Py_INCREF(value);
            return value;
        }
        if (PyLong_CheckExact(value)) { /* a count: format(value) is str(value) */
            PyObject *out = int_text(value);
            if (out != NULL || PyErr_Occurred())
                return out;
        }
        return PyObject_Format(value, NULL); /* as an f-string writes it */
    case KIND_SECONDS:
        return seconds_text(value);
    case KIND_STATUS:
        return status_text(value);
    default:
        PyErr_Format(PyExc_ValueError, "unknown value kind %d", kind);
        return NULL;
    }
    if (!PyUnicode_Check(value) && !PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a log value must be str, bytes or None, not %.100s",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    if (escape == ESCAPE_DEFAULT)
        return write_default(value);
    return write_text(value, escape);
}

#define ASCII_LINE 4096 /* join_ascii's buffer: longer lines take the two passes */

/* join_ascii's usual numbers written straight into ``out`` (80 chars at least), without the str
 * piece_of would make of them: an exact int of a plain or json piece (int_text's digits), a status
 * 0-999 (status_text's), a float's seconds that fixed_text writes (seconds_text's), a json
 * seconds value json_seconds_text writes (json_seconds'), a seconds value of zero or below
 * ("0.000"), a json seconds value of 0.0 ("0.0"),
 * a UTC time in the second utc_time last wrote (utc_direct). Returns the length, or -1 with no error set when the value is not one of those:
 * the caller then asks piece_of, which writes the same characters through a str. */
static int
direct_text(PyObject *value, int kind, char *out)
{
    if (PyLong_CheckExact(value)) {
        if (kind != KIND_PLAIN && kind != KIND_JSON && kind != KIND_STATUS)
            return -1;
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (number == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        if (kind == KIND_STATUS) {
            if (number < 0 || number > 999)
                return -1;
            out[0] = (char)('0' + number / 100);
            out[1] = (char)('0' + number / 10 % 10);
            out[2] = (char)('0' + number % 10);
            return 3;
        }
        char text[24];
        char *at = decimal_digits(number, text + sizeof(text));
        int size = (int)(text + sizeof(text) - at);
        memcpy(out, at, size);
        return size;
    }
    if (kind == KIND_UTC_TIME)
        return utc_direct(value, out);
    if (!PyFloat_CheckExact(value))
        return -1;
    double number = PyFloat_AS_DOUBLE(value);
    if (kind == KIND_JSON_SECONDS && number == 0.0 && !signbit(number)) {
        memcpy(out, "0.0", 3); /* json.dumps(round(0.0, 6)) */
        return 3;
    }
    if (kind == KIND_SECONDS) {
        if (!(number > 0.0)) { /* max(0.0, value): 0.0, -0.0, a negative or NaN (seconds_text's) */
            memcpy(out, "0.000", 5);
            return 5;
        }
        return fixed_text(number, 3, out);
    }
    if (kind != KIND_JSON_SECONDS)
        return -1;
    return json_seconds_text(number, out);
}

/* The usual line in one pass: every literal, value piece and the tail ASCII, the line within
 * ASCII_LINE characters, written into ``line`` (ASCII_LINE chars) as each piece is found; its
 * length returned (-1 with *fits 1: an error set). *fits is set to 0 (-1 returned) when a piece is not ASCII, a literal not a str or
 * the line too long: the caller then takes the two passes, which find the same pieces again (a
 * piece's reading has no effect but the time's cached second). An error of a piece is returned
 * as the two passes would return it: the pieces before it were found alike. */
static Py_ssize_t
join_ascii(PyObject *literals, const unsigned char *flags, PyObject *tail, int escape, PyObject *values,
           Py_ssize_t n, int *fits, char *line)
{
    Py_ssize_t length = 0, i;
    *fits = 0;
    for (i = 0; i < n; i++) {
        PyObject *literal = PyTuple_GET_ITEM(literals, i);
        if (!PyUnicode_Check(literal) || !PyUnicode_IS_ASCII(literal))
            return -1;
        Py_ssize_t size = PyUnicode_GET_LENGTH(literal);
        if (size > ASCII_LINE - length)
            return -1;
        memcpy(line + length, PyUnicode_1BYTE_DATA(literal), size);
        length += size;
        PyObject *value = PyTuple_GET_ITEM(values, i);
        int kind = flags[i];
        if (kind == KIND_ESCAPED || kind == KIND_JSON || kind == KIND_PLAIN) {
            /* The usual text value copied straight in: printable ASCII without '"' or '\\' as an
             * escaped or a json value (what write_default, write_text and json_value return as it
             * is, json's between quotes), an ASCII str as a plain one (piece_of's str itself);
             * anything else through piece_of below. */
            const unsigned char *text = NULL;
            Py_ssize_t text_size = 0;
            if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)) {
                text = PyUnicode_1BYTE_DATA(value);
                text_size = PyUnicode_GET_LENGTH(value);
            }
            else if (kind != KIND_PLAIN && PyBytes_CheckExact(value)) {
                text = (const unsigned char *)PyBytes_AS_STRING(value);
                text_size = PyBytes_GET_SIZE(value);
            }
            if (text != NULL && text_size <= ASCII_LINE - 2 - length
                && (kind == KIND_PLAIN || clean_prefix(text, text_size) == text_size)) {
                if (kind == KIND_JSON)
                    line[length++] = '"';
                memcpy(line + length, text, text_size);
                length += text_size;
                if (kind == KIND_JSON)
                    line[length++] = '"';
                continue;
            }
        }
        if (kind == KIND_REQUEST && escape == ESCAPE_DEFAULT && value != Py_None) {
            /* $request written straight in when its parts need no escaping (request_line's bytes
             * without making them); else piece_of below reads and writes it. */
            PyObject *parts[3];
            if (request_parts(value, parts) < 0) {
                *fits = 1; /* the error piece_of would raise here */
                return -1;
            }
            Py_ssize_t method = PyBytes_GET_SIZE(parts[0]), uri = PyBytes_GET_SIZE(parts[1]);
            Py_ssize_t version = PyBytes_GET_SIZE(parts[2]);
            const unsigned char *version_text = (const unsigned char *)PyBytes_AS_STRING(parts[2]);
            if (version == 1 && version_text[0] == '2') {
                version_text = (const unsigned char *)"2.0";
                version = 3;
            }
            int written = 0;
            if (method < ASCII_LINE && uri < ASCII_LINE && version < ASCII_LINE
                && method + 1 + uri + 6 + version <= ASCII_LINE - 2 - length
                && clean_prefix((const unsigned char *)PyBytes_AS_STRING(parts[0]), method) == method
                && clean_prefix((const unsigned char *)PyBytes_AS_STRING(parts[1]), uri) == uri
                && clean_prefix(version_text, version) == version) {
                length = put_request(line + length, parts, (const char *)version_text, version) - line;
                written = 1;
            }
            Py_DECREF(parts[0]);
            Py_DECREF(parts[1]);
            Py_DECREF(parts[2]);
            if (written)
                continue;
        }
        char digits[80];
        int direct = direct_text(value, kind, digits);
        if (direct >= 0) {
            if (direct > ASCII_LINE - 2 - length)
                return -1;
            memcpy(line + length, digits, direct);
            length += direct;
            continue;
        }
        int quote = 0;
        PyObject *piece = piece_of(PyTuple_GET_ITEM(values, i), flags[i], escape, &quote);
        if (piece == NULL) {
            *fits = 1; /* the error, as the two passes would raise it here */
            return -1;
        }
        const char *data;
        if (PyBytes_Check(piece)) { /* ASCII, checked by piece_of */
            data = PyBytes_AS_STRING(piece);
            size = PyBytes_GET_SIZE(piece);
        }
        else if (PyUnicode_IS_ASCII(piece)) {
            data = (const char *)PyUnicode_1BYTE_DATA(piece);
            size = PyUnicode_GET_LENGTH(piece);
        }
        else {
            Py_DECREF(piece);
            return -1;
        }
        if (size > ASCII_LINE - 2 - length) {
            Py_DECREF(piece);
            return -1;
        }
        if (quote)
            line[length++] = '"';
        memcpy(line + length, data, size);
        length += size;
        if (quote)
            line[length++] = '"';
        Py_DECREF(piece);
    }
    if (!PyUnicode_IS_ASCII(tail) || PyUnicode_GET_LENGTH(tail) > ASCII_LINE - length)
        return -1;
    memcpy(line + length, PyUnicode_1BYTE_DATA(tail), PyUnicode_GET_LENGTH(tail));
    length += PyUnicode_GET_LENGTH(tail);
    *fits = 1;
    return length;
}

/* A form and its values checked (join_line's TypeErrors and ValueErrors): 0, its parts read into
 * the out arguments; -1 with an error set. */
static int
form_parts(PyObject *form, PyObject *values, PyObject **literals, const unsigned char **flags,
           PyObject **tail, int *escape, Py_ssize_t *n)
{
    if (!PyTuple_Check(form) || PyTuple_GET_SIZE(form) != 4) {
        PyErr_SetString(PyExc_TypeError, "form must be a tuple (literals, kinds, tail, escape)");
        return -1;
    }
    PyObject *kinds = PyTuple_GET_ITEM(form, 1), *escape_object = PyTuple_GET_ITEM(form, 3);
    *literals = PyTuple_GET_ITEM(form, 0);
    *tail = PyTuple_GET_ITEM(form, 2);
    if (!PyTuple_Check(*literals) || !PyBytes_Check(kinds) || !PyUnicode_Check(*tail)
        || !PyLong_Check(escape_object) || !PyTuple_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "form must be (tuple of str, bytes, str, int) and values a tuple");
        return -1;
    }
    long number = PyLong_AsLong(escape_object);
    if (number < ESCAPE_DEFAULT || number > ESCAPE_NONE) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "escape must be 0 (default), 1 (json) or 2 (none)");
        return -1;
    }
    *escape = (int)number;
    *n = PyTuple_GET_SIZE(values);
    if (PyTuple_GET_SIZE(*literals) != *n || PyBytes_GET_SIZE(kinds) != *n) {
        PyErr_SetString(PyExc_ValueError, "literals, kinds and values must have the same length");
        return -1;
    }
    if (*n > (PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) - 1) / 2) {
        PyErr_NoMemory();
        return -1;
    }
    *flags = (const unsigned char *)PyBytes_AS_STRING(kinds);
    return 0;
}

static PyObject *join_pieces(PyObject *literals, const unsigned char *flags, PyObject *tail, int escape,
                             PyObject *values, Py_ssize_t n);

static PyObject *
join_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "join_line(form, values) takes 2 arguments");
        return NULL;
    }
    PyObject *literals, *tail, *values = args[1];
    const unsigned char *flags;
    int escape, fits;
    Py_ssize_t n;
    if (form_parts(args[0], values, &literals, &flags, &tail, &escape, &n) < 0)
        return NULL;
    char line[ASCII_LINE];
    Py_ssize_t length = join_ascii(literals, flags, tail, escape, values, n, &fits, line);
    if (fits)
        return length < 0 ? NULL : ascii_text(line, length);
    return join_pieces(literals, flags, tail, escape, values, n);
}

/* LineBuffer: the access log's waiting lines as bytes in one growing buffer, with each line's end
 * offset, bounded in bytes: a line is taken when the bytes waiting before it (its own and its
 * ``shared`` partner's) are below ``max_bytes``, else counted in ``dropped``; whole lines only.
 * ``take()`` hands every waiting line to the writer at once, as (bytes, count); ``take_lines()``
 * as a list of one bytes a line (syslog: a datagram a line). Each method is one C call that runs
 * no Python code, so the reactor's appends and the writer thread's takes never interleave. */
typedef struct LineBuffer {
    PyObject_HEAD
    char *data;
    Py_ssize_t size, capacity;
    Py_ssize_t *ends; /* each line's end offset in data */
    Py_ssize_t lines, ends_capacity;
    Py_ssize_t max_bytes;
    Py_ssize_t dropped;
    struct LineBuffer *shared; /* a strong reference, or NULL */
} LineBuffer;

static PyTypeObject LineBufferType;

/* The line's ``length`` bytes appended, or dropped and counted: 1 appended, 0 dropped, -1 error. */
static int
line_buffer_put(LineBuffer *self, const char *line, Py_ssize_t length)
{
    Py_ssize_t waiting = self->size + (self->shared != NULL ? self->shared->size : 0);
    if (waiting >= self->max_bytes) {
        self->dropped++;
        return 0;
    }
    if (length > self->capacity - self->size) {
        if (length > PY_SSIZE_T_MAX / 2 - self->size) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t capacity = (self->size + length) * 2;
        if (capacity < 4096)
            capacity = 4096;
        char *data = PyMem_Realloc(self->data, capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->data = data;
        self->capacity = capacity;
    }
    if (self->lines == self->ends_capacity) {
        if (self->ends_capacity > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(Py_ssize_t)) {
            PyErr_NoMemory();
            return -1;
        }
        Py_ssize_t capacity = self->ends_capacity < 64 ? 64 : self->ends_capacity * 2;
        Py_ssize_t *ends = PyMem_Realloc(self->ends, capacity * sizeof(Py_ssize_t));
        if (ends == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->ends = ends;
        self->ends_capacity = capacity;
    }
    memcpy(self->data + self->size, line, length);
    self->size += length;
    self->ends[self->lines++] = self->size;
    return 1;
}

/* Emptied, keeping its memory up to 1 MiB (a burst's buffer is given back). */
static void
line_buffer_clear(LineBuffer *self)
{
    self->size = 0;
    self->lines = 0;
    if (self->capacity > (1 << 20)) {
        PyMem_Free(self->data);
        self->data = NULL;
        self->capacity = 0;
        PyMem_Free(self->ends);
        self->ends = NULL;
        self->ends_capacity = 0;
    }
}

static PyObject *
line_buffer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"max_bytes", "shared", NULL};
    Py_ssize_t max_bytes;
    PyObject *shared = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n|O:LineBuffer", names, &max_bytes, &shared))
        return NULL;
    if (shared != Py_None && !PyObject_TypeCheck(shared, &LineBufferType)) {
        PyErr_SetString(PyExc_TypeError, "shared must be a LineBuffer or None");
        return NULL;
    }
    LineBuffer *self = (LineBuffer *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->max_bytes = max_bytes;
    if (shared != Py_None) {
        Py_INCREF(shared);
        self->shared = (LineBuffer *)shared;
    }
    return (PyObject *)self;
}

static void
line_buffer_dealloc(LineBuffer *self)
{
    PyMem_Free(self->data);
    PyMem_Free(self->ends);
    Py_XDECREF(self->shared);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
line_buffer_append(LineBuffer *self, PyObject *line)
{
    if (!PyBytes_Check(line)) {
        PyErr_Format(PyExc_TypeError, "a line must be bytes, not %.100s", Py_TYPE(line)->tp_name);
        return NULL;
    }
    int put = line_buffer_put(self, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
    if (put < 0)
        return NULL;
    return PyBool_FromLong(put);
}

static PyObject *
line_buffer_take(LineBuffer *self, PyObject *unused)
{
    (void)unused;
    PyObject *data = PyBytes_FromStringAndSize(self->data != NULL ? self->data : "", self->size);
    if (data == NULL)
        return NULL;
    PyObject *result = Py_BuildValue("(Nn)", data, self->lines);
    if (result != NULL)
        line_buffer_clear(self);
    return result;
}

static PyObject *
line_buffer_take_lines(LineBuffer *self, PyObject *unused)
{
    (void)unused;
    PyObject *lines = PyList_New(self->lines);
    if (lines == NULL)
        return NULL;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < self->lines; i++) {
        PyObject *line = PyBytes_FromStringAndSize(self->data + start, self->ends[i] - start);
        if (line == NULL) {
            Py_DECREF(lines);
            return NULL;
        }
        PyList_SET_ITEM(lines, i, line);
        start = self->ends[i];
    }
    line_buffer_clear(self);
    return lines;
}

static Py_ssize_t
line_buffer_length(LineBuffer *self)
{
    return self->lines;
}

static PyObject *
line_buffer_size(LineBuffer *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->size);
}

static PyObject *
line_buffer_dropped(LineBuffer *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->dropped);
}

static PyObject *
line_buffer_get_max_bytes(LineBuffer *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->max_bytes);
}

static int
line_buffer_set_max_bytes(LineBuffer *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "max_bytes cannot be deleted");
        return -1;
    }
    Py_ssize_t max_bytes = PyLong_AsSsize_t(value);
    if (max_bytes == -1 && PyErr_Occurred())
        return -1;
    self->max_bytes = max_bytes;
    return 0;
}

static PyMethodDef line_buffer_methods[] = {
    {"append", (PyCFunction)line_buffer_append, METH_O,
     "append(line: bytes) -> bool: the line appended (True), or dropped and counted (the byte bound reached)."},
    {"take", (PyCFunction)line_buffer_take, METH_NOARGS,
     "take() -> (bytes, int): every waiting line's bytes and their count; the buffer emptied."},
    {"take_lines", (PyCFunction)line_buffer_take_lines, METH_NOARGS,
     "take_lines() -> list[bytes]: every waiting line, one bytes a line; the buffer emptied."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef line_buffer_getset[] = {
    {"size", (getter)line_buffer_size, NULL, "bytes waiting", NULL},
    {"dropped", (getter)line_buffer_dropped, NULL, "lines dropped at the byte bound, all told", NULL},
    {"max_bytes", (getter)line_buffer_get_max_bytes, (setter)line_buffer_set_max_bytes, "the byte bound", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods line_buffer_sequence = {
    .sq_length = (lenfunc)line_buffer_length,
};

static PyTypeObject LineBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ingressd._logline.LineBuffer",
    .tp_basicsize = sizeof(LineBuffer),
    .tp_dealloc = (destructor)line_buffer_dealloc,
    .tp_as_sequence = &line_buffer_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "LineBuffer(max_bytes, shared=None): waiting access-log lines as bytes in one buffer "
              "(twin: ingressd.logline.LineBufferPy).",
    .tp_methods = line_buffer_methods,
    .tp_getset = line_buffer_getset,
    .tp_new = line_buffer_new,
};

/* join_line_into(form, values, buffer): the line's UTF-8 bytes (surrogateescape, as the access log
 * encodes a str line) appended to the LineBuffer ``buffer`` (LineBuffer.append's bound): True, or
 * False when the bound dropped it. Nothing is appended when the line fails. The usual ASCII line
 * goes from join_ascii's stack buffer straight into ``buffer``: no str made. The line is made
 * before the buffer is touched, so no Python code runs between the two. */
static PyObject *
join_line_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "join_line_into(form, values, buffer) takes 3 arguments");
        return NULL;
    }
    PyObject *literals, *tail, *values = args[1], *buffer = args[2];
    const unsigned char *flags;
    int escape, fits;
    Py_ssize_t n;
    if (Py_TYPE(buffer) != &LineBufferType) {
        PyErr_SetString(PyExc_TypeError, "buffer must be a LineBuffer");
        return NULL;
    }
    if (form_parts(args[0], values, &literals, &flags, &tail, &escape, &n) < 0)
        return NULL;
    char line[ASCII_LINE];
    const char *data = line;
    Py_ssize_t length = join_ascii(literals, flags, tail, escape, values, n, &fits, line);
    PyObject *encoded = NULL;
    if (fits) {
        if (length < 0)
            return NULL;
    }
    else {
        PyObject *text = join_pieces(literals, flags, tail, escape, values, n);
        if (text == NULL)
            return NULL;
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogateescape");
        Py_DECREF(text);
        if (encoded == NULL)
            return NULL;
        data = PyBytes_AS_STRING(encoded);
        length = PyBytes_GET_SIZE(encoded);
    }
    int put = line_buffer_put((LineBuffer *)buffer, data, length);
    Py_XDECREF(encoded);
    if (put < 0)
        return NULL;
    return PyBool_FromLong(put);
}

/* The line in two passes (any width, any length): each piece found, then the str made once. */
static PyObject *
join_pieces(PyObject *literals, const unsigned char *flags, PyObject *tail, int escape, PyObject *values,
            Py_ssize_t n)
{
    Py_ssize_t count = 2 * n + 1, made = 0, i;
    PyObject *stack[STACK_PIECES];
    char stack_quoted[STACK_PIECES];
    PyObject **pieces = stack;
    char *quoted = stack_quoted;
    PyObject *result = NULL;
    if (count > STACK_PIECES) {
        pieces = PyMem_Malloc(sizeof(PyObject *) * count);
        quoted = PyMem_Malloc(count);
        if (pieces == NULL || quoted == NULL) {
            PyMem_Free(pieces);
            PyMem_Free(quoted);
            return PyErr_NoMemory();
        }
    }
    /* Pass 1: every piece (new references), the line's length and widest character. */
    Py_ssize_t length = 0;
    Py_UCS4 maxchar = 127;
    for (i = 0; i < count; i++) {
        PyObject *piece;
        int quote = 0;
        if (i == count - 1) {
            piece = tail;
            Py_INCREF(piece);
        }
        else if (i % 2 == 0) {
            piece = PyTuple_GET_ITEM(literals, i / 2);
            if (!PyUnicode_Check(piece)) {
                PyErr_SetString(PyExc_TypeError, "literals must be str");
                goto done;
            }
            Py_INCREF(piece);
        }
        else {
            piece = piece_of(PyTuple_GET_ITEM(values, i / 2), flags[i / 2], (int)escape, &quote);
            if (piece == NULL)
                goto done;
        }
        quoted[made] = (char)quote;
        pieces[made++] = piece;
        Py_ssize_t size;
        if (PyBytes_Check(piece))
            size = PyBytes_GET_SIZE(piece); /* ASCII, checked by piece_of */
        else {
            size = PyUnicode_GET_LENGTH(piece);
            Py_UCS4 widest = PyUnicode_MAX_CHAR_VALUE(piece);
            if (widest > maxchar)
                maxchar = widest;
        }
        if (quote)
            size += 2; /* no overflow: the piece exists, far below PY_SSIZE_T_MAX */
        if (size > PY_SSIZE_T_MAX - length) {
            PyErr_NoMemory();
            goto done;
        }
        length += size;
    }
    /* Pass 2: the line at its size and width, the pieces copied in. */
    result = PyUnicode_New(length, maxchar);
    if (result == NULL)
        goto done;
    int kind = PyUnicode_KIND(result);
    char *data = PyUnicode_DATA(result);
    Py_ssize_t at = 0;
    for (i = 0; i < made; i++) {
        PyObject *piece = pieces[i];
        if (quoted[i])
            PyUnicode_WRITE(kind, data, at++, '"');
        if (PyBytes_Check(piece)) {
            const unsigned char *source = (const unsigned char *)PyBytes_AS_STRING(piece);
            Py_ssize_t size = PyBytes_GET_SIZE(piece), j;
            if (kind == PyUnicode_1BYTE_KIND)
                memcpy(data + at, source, size);
            else
                for (j = 0; j < size; j++)
                    PyUnicode_WRITE(kind, data, at + j, source[j]);
            at += size;
            if (quoted[i])
                PyUnicode_WRITE(kind, data, at++, '"');
            continue;
        }
        Py_ssize_t size = PyUnicode_GET_LENGTH(piece);
        if (PyUnicode_KIND(piece) == kind)
            memcpy(data + at * kind, PyUnicode_DATA(piece), size * kind);
        else if (PyUnicode_CopyCharacters(result, at, piece, 0, size) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        at += size;
        if (quoted[i])
            PyUnicode_WRITE(kind, data, at++, '"');
    }
done:
    for (i = 0; i < made; i++)
        Py_DECREF(pieces[i]);
    if (pieces != stack) {
        PyMem_Free(pieces);
        PyMem_Free(quoted);
    }
    return result;
}

/* key == name, as Python compares them: bytes by their contents without a call. */
static inline int
same_name(PyObject *key, PyObject *name)
{
    if (PyBytes_CheckExact(key) && PyBytes_CheckExact(name))
        return PyBytes_GET_SIZE(key) == PyBytes_GET_SIZE(name)
               && memcmp(PyBytes_AS_STRING(key), PyBytes_AS_STRING(name), PyBytes_GET_SIZE(key)) == 0;
    PyObject *equal = PyObject_RichCompare(key, name, Py_EQ); /* no identity shortcut, as == */
    if (equal == NULL)
        return -1;
    int truth = PyObject_IsTrue(equal);
    Py_DECREF(equal);
    return truth;
}

static PyObject *
header_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "header_values(headers, names) takes 2 arguments");
        return NULL;
    }
    PyObject *headers = args[0], *names = args[1];
    if (!PyTuple_CheckExact(names)) {
        PyErr_SetString(PyExc_TypeError, "names must be a tuple");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names), i, j, found = 0;
    PyObject *result = PyTuple_New(n); /* its items NULL until set */
    if (result == NULL)
        return NULL;
    PyObject *pairs = PyObject_GetAttr(headers, PAIRS_NAME);
    if (pairs == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            goto fail;
        PyErr_Clear();
    }
    int listed = pairs != NULL && PyList_CheckExact(pairs);
    for (i = 0; listed && i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            listed = 0;
    }
    if (!listed) { /* not ingressd's Headers: its get() for each name */
        Py_XDECREF(pairs);
        for (j = 0; j < n; j++) {
            PyObject *value = PyObject_CallMethodOneArg(headers, GET_NAME, PyTuple_GET_ITEM(names, j));
            if (value == NULL)
                goto fail;
            PyTuple_SET_ITEM(result, j, value);
        }
        return result;
    }
    /* One pass over the pairs; the list is read again at every step (a comparison that runs
     * Python code could change it). */
    for (i = 0; found < n && i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            continue;
        Py_INCREF(pair);
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        for (j = 0; j < n; j++) {
            if (PyTuple_GET_ITEM(result, j) != NULL)
                continue;
            int same = same_name(key, PyTuple_GET_ITEM(names, j));
            if (same < 0) {
                Py_DECREF(pair);
                Py_DECREF(pairs);
                goto fail;
            }
            if (same) {
                PyObject *value = PyTuple_GET_ITEM(pair, 1);
                Py_INCREF(value);
                PyTuple_SET_ITEM(result, j, value);
                found++;
            }
        }
        Py_DECREF(pair);
    }
    Py_DECREF(pairs);
    for (j = 0; j < n; j++)
        if (PyTuple_GET_ITEM(result, j) == NULL) {
            Py_INCREF(Py_None);
            PyTuple_SET_ITEM(result, j, Py_None);
        }
    return result;
fail:
    Py_DECREF(result); /* NULL items are skipped by the tuple's deallocation */
    return NULL;
}

static PyMethodDef methods[] = {
    {"header_values", (PyCFunction)(void (*)(void))header_values, METH_FASTCALL,
     "header_values(headers, names) -> tuple: each name's first value in headers.pairs, else None."},
    {"join_line", (PyCFunction)(void (*)(void))join_line, METH_FASTCALL,
     "join_line(form, values) -> str: an access-log line from a compiled form and its values."},
    {"join_line_into", (PyCFunction)(void (*)(void))join_line_into, METH_FASTCALL,
     "join_line_into(form, values, buffer) -> bool: the line's UTF-8 bytes appended to a LineBuffer (False: dropped at its bound)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "ingressd._logline",
    "An access-log line joined and escaped in one call (twin: ingressd.logline).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__logline(void)
{
    if (DASH == NULL && (DASH = PyUnicode_InternFromString("-")) == NULL)
        return NULL;
    if (EMPTY == NULL && (EMPTY = PyUnicode_InternFromString("")) == NULL)
        return NULL;
    if (NULL_TEXT == NULL && (NULL_TEXT = PyUnicode_InternFromString("null")) == NULL)
        return NULL;
    if (METHOD_NAME == NULL && (METHOD_NAME = PyUnicode_InternFromString("method")) == NULL)
        return NULL;
    if (REQUEST_URI_NAME == NULL && (REQUEST_URI_NAME = PyUnicode_InternFromString("request_uri")) == NULL)
        return NULL;
    if (VERSION_NAME == NULL && (VERSION_NAME = PyUnicode_InternFromString("version")) == NULL)
        return NULL;
    if (PAIRS_NAME == NULL && (PAIRS_NAME = PyUnicode_InternFromString("pairs")) == NULL)
        return NULL;
    if (GET_NAME == NULL && (GET_NAME = PyUnicode_InternFromString("get")) == NULL)
        return NULL;
    if (REQUEST_NAME == NULL && (REQUEST_NAME = PyUnicode_InternFromString("request")) == NULL)
        return NULL;
    if (TARGET_NAME == NULL && (TARGET_NAME = PyUnicode_InternFromString("target")) == NULL)
        return NULL;
    for (int k = 0; k < SMALL_MICROS; k++) { /* float.__repr__(k / 1e6), as float_repr asks it */
        char *text = PyOS_double_to_string(k / 1e6, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return NULL;
        size_t size = strlen(text);
        if (size >= sizeof(small_json_text[k])) {
            PyMem_Free(text);
            PyErr_SetString(PyExc_SystemError, "_logline: a small seconds repr is too long");
            return NULL;
        }
        memcpy(small_json_text[k], text, size);
        small_json_size[k] = (unsigned char)size;
        PyMem_Free(text);
    }
    if (PyType_Ready(&LineBufferType) < 0)
        return NULL;
    PyObject *made = PyModule_Create(&module);
    if (made == NULL)
        return NULL;
    Py_INCREF(&LineBufferType);
    if (PyModule_AddObject(made, "LineBuffer", (PyObject *)&LineBufferType) < 0) {
        Py_DECREF(&LineBufferType);
        Py_DECREF(made);
        return NULL;
    }
    return made;
}
