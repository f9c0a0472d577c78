/* ingressd.proxy._response_head: a backend's HTTP/1.1 response head in one call.
 *
 * parse_response_head(buffer: bytes, drop: frozenset) -> tuple | None, the C accelerator of
 * ingressd.proxy.response_head (whose pure-Python twin, parse_response_head_py, gives the
 * same results; the module's docstring is the specification). It reads a complete, ordinary
 * response head at the start of `buffer` and returns
 *     (head_end, minor, status, reason, headers, content_length, keep_alive, kept)
 * (kept: the headers without the names in `drop` and those Connection lists, as
 * ingressd.http.headers.without_hop_by_hop gives them) or declines with None for anything
 * else, which then goes to llhttp as it always did.
 * parse_response_relay(buffer, drop) gives the same and, as a ninth item, the kept headers
 * as the client's head carries them (ingressd.http.headers.serialize(kept)), so that a
 * relayed head is written without another pass over its headers in Python.
 * Every index is checked against `limit` before it is read; the only failure besides None
 * is MemoryError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_HEAD 65536   /* bytes of head looked at; a longer head is declined */
#define MAX_HEADERS 100  /* header lines; more are declined */
#define MAX_LENGTH_DIGITS 18

static unsigned char token_char[256]; /* RFC 9110 tchar */
static unsigned char value_char[256]; /* what strict llhttp takes in a value: HTAB, SP-~, obs-text */

static void init_tables(void)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    int c;
    for (c = 0; c < 256; c++) {
        token_char[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        value_char[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
    }
    for (; *extra; extra++)
        token_char[(unsigned char)*extra] = 1;
}

/* The lower-case `name` (n bytes) equals the lower-case literal `word`. */
static int is_name(const char *name, Py_ssize_t n, const char *word)
{
    return (size_t)n == strlen(word) && memcmp(name, word, (size_t)n) == 0;
}

/* `value` (n bytes) equals the lower-case literal `word`, case-insensitively. */
static int is_word(const unsigned char *value, Py_ssize_t n, const char *word)
{
    Py_ssize_t i;
    if ((size_t)n != strlen(word))
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = value[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != (unsigned char)word[i])
            return 0;
    }
    return 1;
}

/* `kept` without the pairs named `word` (a token Connection listed): a new list, or NULL. */
static PyObject *without_name(PyObject *kept, const char *word)
{
    Py_ssize_t i, n = PyList_GET_SIZE(kept);
    PyObject *result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(kept, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        if (is_name(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), word))
            continue;
        if (PyList_Append(result, pair) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

/* The kept pairs as the client's head carries them, "name: value\r\n" each (what
   ingressd.http.headers.serialize makes of them): a new bytes object, or NULL. */
static PyObject *head_lines(PyObject *kept)
{
    Py_ssize_t i, n = PyList_GET_SIZE(kept), size = 0;
    PyObject *lines;
    char *out;
    for (i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(kept, i);
        /* each part is at most MAX_HEAD bytes and there are at most MAX_HEADERS: no overflow */
        size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 0)) + PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 1)) + 4;
    }
    lines = PyBytes_FromStringAndSize(NULL, size);
    if (lines == NULL)
        return NULL;
    out = PyBytes_AS_STRING(lines);
    for (i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(kept, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t name_size = PyBytes_GET_SIZE(name), value_size = PyBytes_GET_SIZE(value);
        memcpy(out, PyBytes_AS_STRING(name), (size_t)name_size);
        out += name_size;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, PyBytes_AS_STRING(value), (size_t)value_size);
        out += value_size;
        *out++ = '\r';
        *out++ = '\n';
    }
    return lines;
}

/* Both entry points: the 8-tuple, or with `with_lines` the 9-tuple ending in head_lines(kept). */
static PyObject *parse(PyObject *args, int with_lines)
{
    PyObject *arg, *drop;
    const unsigned char *p;
    Py_ssize_t size, limit, pos, start, end, count = 0;
    int minor, status, connection_close = 0, connection_keep_alive = 0, keep_alive;
    long long length = -1;
    int listed = 0;  /* a Connection header was dropped: the names it lists go too */
    PyObject *headers = NULL, *kept = NULL, *reason = NULL, *result = NULL, *length_object = NULL;

    if (!PyArg_ParseTuple(args, with_lines ? "OO:parse_response_relay" : "OO:parse_response_head", &arg, &drop))
        return NULL;
    if (!PyBytes_Check(arg) || !PyAnySet_Check(drop)) {
        PyErr_SetString(PyExc_TypeError, with_lines ? "parse_response_relay() takes bytes and a set of names"
                                                    : "parse_response_head() takes bytes and a set of names");
        return NULL;
    }
    p = (const unsigned char *)PyBytes_AS_STRING(arg);
    size = PyBytes_GET_SIZE(arg);
    limit = size < MAX_HEAD ? size : MAX_HEAD;

    /* Status line: "HTTP/1.x NNN[ reason]\r\n". */
    if (limit < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' '
        || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        Py_RETURN_NONE;
    minor = p[7] - '0';
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status < 200 || status > 599)
        Py_RETURN_NONE; /* interim and upgrade answers, and odd codes: llhttp's */
    if (p[12] == ' ')
        start = 13;
    else if (p[12] == '\r')
        start = 12;
    else
        Py_RETURN_NONE;
    for (pos = start; pos < limit && value_char[p[pos]]; pos++)
        ;
    if (pos + 1 >= limit || p[pos] != '\r' || p[pos + 1] != '\n')
        Py_RETURN_NONE;
    end = pos;
    pos += 2;

    headers = PyList_New(0);
    if (headers == NULL)
        return NULL;
    kept = PyList_New(0);
    if (kept == NULL) {
        Py_DECREF(headers);
        return NULL;
    }
    for (;;) {
        Py_ssize_t name_start = pos, name_length, value_start, value_end;
        PyObject *name, *value, *pair;
        char *lower;
        int dropped, connection = 0;
        Py_ssize_t i;

        if (pos >= limit)
            goto decline;
        if (p[pos] == '\r') {
            if (pos + 1 >= limit || p[pos + 1] != '\n')
                goto decline;
            pos += 2;
            break;
        }
        while (pos < limit && token_char[p[pos]])
            pos++;
        name_length = pos - name_start;
        if (name_length == 0 || pos >= limit || p[pos] != ':')
            goto decline;
        pos++;
        while (pos < limit && (p[pos] == ' ' || p[pos] == '\t'))
            pos++;
        value_start = pos;
        while (pos < limit && value_char[p[pos]])
            pos++;
        if (pos + 1 >= limit || p[pos] != '\r' || p[pos + 1] != '\n')
            goto decline;
        value_end = pos;
        pos += 2;
        if (++count > MAX_HEADERS)
            goto decline;

        name = PyBytes_FromStringAndSize(NULL, name_length);
        if (name == NULL)
            goto error;
        lower = PyBytes_AS_STRING(name);
        for (i = 0; i < name_length; i++) {
            unsigned char c = p[name_start + i];
            lower[i] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
        }
        /* The names llhttp gives a meaning to: only their plainest forms are taken here. */
        if (is_name(lower, name_length, "content-length")) {
            Py_ssize_t digits = value_end - value_start;
            if (length >= 0 || digits < 1 || digits > MAX_LENGTH_DIGITS) {
                Py_DECREF(name);
                goto decline;
            }
            length = 0;
            for (i = value_start; i < value_end; i++) {
                if (p[i] < '0' || p[i] > '9') {
                    Py_DECREF(name);
                    goto decline;
                }
                length = length * 10 + (p[i] - '0');
            }
        } else if (is_name(lower, name_length, "connection")) {
            connection = 1;
            if (is_word(p + value_start, value_end - value_start, "close"))
                connection_close = 1;
            else if (is_word(p + value_start, value_end - value_start, "keep-alive"))
                connection_keep_alive = 1;
            else {
                Py_DECREF(name);
                goto decline;
            }
        } else if (is_name(lower, name_length, "transfer-encoding") || is_name(lower, name_length, "upgrade")
                   || is_name(lower, name_length, "proxy-connection")) {
            Py_DECREF(name);
            goto decline;
        }
        dropped = PySet_Contains(drop, name);
        if (dropped < 0) {
            Py_DECREF(name);
            goto error;
        }
        listed |= dropped && connection;
        value = PyBytes_FromStringAndSize((const char *)p + value_start, value_end - value_start);
        if (value == NULL) {
            Py_DECREF(name);
            goto error;
        }
        pair = PyTuple_Pack(2, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (pair == NULL)
            goto error;
        if (PyList_Append(headers, pair) < 0 || (!dropped && PyList_Append(kept, pair) < 0)) {
            Py_DECREF(pair);
            goto error;
        }
        Py_DECREF(pair);
    }
    if (connection_close && connection_keep_alive)
        goto decline;
    if (listed) {  /* Connection's one token: a field of that name is the connection's too */
        PyObject *fewer = without_name(kept, connection_close ? "close" : "keep-alive");
        if (fewer == NULL)
            goto error;
        Py_DECREF(kept);
        kept = fewer;
    }
    /* llhttp's should_keep_alive(): the version's default or what Connection says, and a
       body whose end is known (a length, or none at all for 204 and 304). */
    keep_alive = minor == 1 ? !connection_close : connection_keep_alive;
    if (length < 0 && status != 204 && status != 304)
        keep_alive = 0;

    reason = PyBytes_FromStringAndSize((const char *)p + start, end - start);
    if (reason == NULL)
        goto error;
    if (length >= 0) {
        length_object = PyLong_FromLongLong(length);
        if (length_object == NULL)
            goto error;
    } else {
        length_object = Py_None;
        Py_INCREF(length_object);
    }
    {
        /* The result tuple filled by hand (Py_BuildValue parses its format string on every
           call). Every object below is this call's own reference, handed over to the tuple. */
        PyObject *lines = NULL;
        if (with_lines) {
            lines = head_lines(kept);
            if (lines == NULL)
                goto error;
        }
        PyObject *pos_obj = PyLong_FromSsize_t(pos);
        PyObject *minor_obj = pos_obj == NULL ? NULL : PyLong_FromLong(minor);
        PyObject *status_obj = minor_obj == NULL ? NULL : PyLong_FromLong(status);
        result = status_obj == NULL ? NULL : PyTuple_New(with_lines ? 9 : 8);
        if (result == NULL) {
            Py_XDECREF(pos_obj);
            Py_XDECREF(minor_obj);
            Py_XDECREF(status_obj);
            Py_XDECREF(lines);
            goto error;
        }
        PyObject *keep_obj = keep_alive ? Py_True : Py_False;
        Py_INCREF(keep_obj);
        PyTuple_SET_ITEM(result, 0, pos_obj);
        PyTuple_SET_ITEM(result, 1, minor_obj);
        PyTuple_SET_ITEM(result, 2, status_obj);
        PyTuple_SET_ITEM(result, 3, reason);
        PyTuple_SET_ITEM(result, 4, headers);
        PyTuple_SET_ITEM(result, 5, length_object);
        PyTuple_SET_ITEM(result, 6, keep_obj);
        PyTuple_SET_ITEM(result, 7, kept);
        if (with_lines)
            PyTuple_SET_ITEM(result, 8, lines);
        return result;
    }

decline:
    Py_DECREF(headers);
    Py_DECREF(kept);
    Py_RETURN_NONE;
error:
    Py_XDECREF(reason);
    Py_XDECREF(length_object);
    Py_DECREF(headers);
    Py_DECREF(kept);
    return NULL;
}

static PyObject *parse_response_head(PyObject *module, PyObject *args)
{
    (void)module;
    return parse(args, 0);
}

static PyObject *parse_response_relay(PyObject *module, PyObject *args)
{
    (void)module;
    return parse(args, 1);
}

static PyMethodDef methods[] = {
    {"parse_response_head", parse_response_head, METH_VARARGS,
     "parse_response_head(buffer, drop) -> (head_end, minor, status, reason, headers, content_length, keep_alive,"
     " kept) or None: see ingressd.proxy.response_head."},
    {"parse_response_relay", parse_response_relay, METH_VARARGS,
     "parse_response_relay(buffer, drop) -> parse_response_head's tuple and the kept headers' lines"
     " (b'name: value\\r\\n' each), or None: see ingressd.proxy.response_head."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_response_head", "A backend's HTTP/1.1 response head in one call (C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__response_head(void)
{
    init_tables();
    return PyModule_Create(&module_definition);
}
