/* ingressd.http._request_head: a plain HTTP/1.1 request head in one call (issue 24).
 *
 * The C twin of ingressd/http/request_head.py's parse_request_head_py: same arguments, same
 * results, same declines (None). That file's docstring says what is plain and what is
 * declined; the tests run every case through both and fuzz them against each other.
 *
 * parse_request_head(data: bytes, start: int, one_buffer: int, max_headers: int,
 *                    drop_underscores) -> None | (method, target, version, headers,
 *                    keep_alive, end, head_bytes, content_length)
 *
 * Only the CPython C API; every read is within [start, size) of the bytes object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Byte classes, filled once at import. */
static unsigned char token_char[256];  /* a header name's tchar */
static unsigned char target_char[256]; /* 0x21-0x7E */
static unsigned char value_char[256];  /* HTAB, 0x20-0xFF but DEL */

/* The methods served without llhttp, as bytes objects made once (a new one per request
 * would be an allocation for nothing). */
static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
#define N_METHODS ((int)(sizeof(method_names) / sizeof(method_names[0])))
static PyObject *method_objects[N_METHODS];
static PyObject *version_11;
static PyObject *version_10;
static PyObject *zero;

/* Lower-case ASCII copy of a name, as bytes.lower() does. */
static PyObject *
lower_bytes(const unsigned char *src, Py_ssize_t len)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, len);
    if (out == NULL)
        return NULL;
    char *dst = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = src[i];
        dst[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    return out;
}

/* Whether lower-cased bytes [p, p+len) equal the lower-case literal s. */
static int
equals_lower(const unsigned char *p, Py_ssize_t len, const char *s)
{
    Py_ssize_t n = (Py_ssize_t)strlen(s);
    if (len != n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (unsigned char)s[i])
            return 0;
    }
    return 1;
}

static PyObject *
parse_request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "parse_request_head takes exactly 5 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "parse_request_head: data must be bytes");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t one_buffer = PyLong_AsSsize_t(args[2]);
    if (one_buffer == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t max_headers = PyLong_AsSsize_t(args[3]);
    if (max_headers == -1 && PyErr_Occurred())
        return NULL;
    int drop_underscores = PyObject_IsTrue(args[4]);
    if (drop_underscores < 0)
        return NULL;

    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (start < 0 || start > size || one_buffer < 0 || max_headers < 0)
        Py_RETURN_NONE;

    /* The head's end: the first CRLF CRLF within 2 * one_buffer + 4 bytes (as the twin's find). */
    Py_ssize_t stop = size;
    if (one_buffer <= (PY_SSIZE_T_MAX - 4) / 2 - start && start + 2 * one_buffer + 4 < size)
        stop = start + 2 * one_buffer + 4;
    Py_ssize_t blank = -1;
    for (Py_ssize_t i = start; i + 4 <= stop; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            blank = i;
            break;
        }
    }
    if (blank < 0)
        Py_RETURN_NONE;

    /* The request line: [start, line_end). Lines end at a CRLF; the head's lines end at blank. */
    const unsigned char *p = buf + start;
    const unsigned char *head_end = buf + blank; /* the last line's CR (or the request line's) */
    const unsigned char *line_end = p;
    while (line_end < head_end && !(line_end[0] == '\r' && line_end[1] == '\n'))
        line_end++;
    /* line_end <= head_end, and line_end[0..1] is CRLF (head_end's is) */

    const unsigned char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    if (sp1 == NULL || sp1 == p)
        Py_RETURN_NONE;
    PyObject *method = NULL;
    Py_ssize_t method_len = sp1 - p;
    for (int m = 0; m < N_METHODS; m++) {
        if ((Py_ssize_t)strlen(method_names[m]) == method_len &&
            memcmp(p, method_names[m], (size_t)method_len) == 0) {
            method = method_objects[m];
            break;
        }
    }
    if (method == NULL)
        Py_RETURN_NONE;
    const unsigned char *target = sp1 + 1;
    const unsigned char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (sp2 == NULL)
        Py_RETURN_NONE;
    Py_ssize_t target_len = sp2 - target;
    if (target_len < 1 || target[0] != '/')
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < target_len; i++)
        if (!target_char[target[i]])
            Py_RETURN_NONE;
    PyObject *version;
    if (line_end - (sp2 + 1) == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)
        version = version_11;
    else if (line_end - (sp2 + 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
        version = version_10;
    else
        Py_RETURN_NONE;

    /* The header lines: count them first (the twin declines more than max_headers before
     * reading any). Every CRLF between the request line's and the blank line ends one. */
    Py_ssize_t lines = 0;
    for (const unsigned char *q = line_end; q < head_end; q++)
        if (q[0] == '\r' && q[1] == '\n')
            lines++;
    if (lines > max_headers)
        Py_RETURN_NONE;

    Py_ssize_t head_bytes = method_len + target_len + 14;
    int hosts = 0;
    int content_length = 0; /* seen "Content-Length: 0" */
    int connection = -1;    /* -1 none, 0 close, 1 keep-alive */
    PyObject *target_obj = NULL;
    PyObject *headers = PyList_New(0);
    if (headers == NULL)
        return NULL;

    const unsigned char *line = line_end + 2;
    while (line <= head_end) {
        const unsigned char *end = line;
        while (end < head_end && !(end[0] == '\r' && end[1] == '\n'))
            end++;
        /* [line, end) is one header line; end[0..1] is its CRLF */
        const unsigned char *colon = memchr(line, ':', (size_t)(end - line));
        if (colon == NULL || colon == line)
            goto decline;
        Py_ssize_t name_len = colon - line;
        for (Py_ssize_t i = 0; i < name_len; i++)
            if (!token_char[line[i]])
                goto decline;
        const unsigned char *value = colon + 1;
        while (value < end && (*value == ' ' || *value == '\t'))
            value++;
        Py_ssize_t value_len = end - value;
        for (Py_ssize_t i = 0; i < value_len; i++)
            if (!value_char[value[i]])
                goto decline;
        head_bytes += name_len + value_len + 4;
        line = end + 2;
        if (drop_underscores && memchr(colon - name_len, '_', (size_t)name_len) != NULL)
            continue;
        const unsigned char *name = colon - name_len;
        if (equals_lower(name, name_len, "host")) {
            hosts++;
        } else if (equals_lower(name, name_len, "content-length")) {
            if (content_length || value_len != 1 || value[0] != '0')
                goto decline;
            content_length = 1;
        } else if (equals_lower(name, name_len, "connection")) {
            if (connection != -1)
                goto decline;
            if (equals_lower(value, value_len, "close"))
                connection = 0;
            else if (equals_lower(value, value_len, "keep-alive"))
                connection = 1;
            else
                goto decline;
        } else if (equals_lower(name, name_len, "transfer-encoding") ||
                   equals_lower(name, name_len, "upgrade") ||
                   equals_lower(name, name_len, "expect") ||
                   equals_lower(name, name_len, "proxy-connection")) {
            goto decline;
        }
        PyObject *name_obj = lower_bytes(name, name_len);
        if (name_obj == NULL)
            goto error;
        PyObject *value_obj = PyBytes_FromStringAndSize((const char *)value, value_len);
        if (value_obj == NULL) {
            Py_DECREF(name_obj);
            goto error;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name_obj);
            Py_DECREF(value_obj);
            goto error;
        }
        PyTuple_SET_ITEM(pair, 0, name_obj);  /* steals */
        PyTuple_SET_ITEM(pair, 1, value_obj);
        int failed = PyList_Append(headers, pair);
        Py_DECREF(pair);
        if (failed)
            goto error;
    }
    if (hosts != 1 || head_bytes > one_buffer)
        goto decline;

    int keep_alive = version == version_11 ? connection != 0 : connection == 1;
    target_obj = PyBytes_FromStringAndSize((const char *)target, target_len);
    if (target_obj == NULL)
        goto error;
    /* The result tuple filled by hand: Py_BuildValue parses its format string on every call
       (~3,900 instructions a request for the three heads' tuples, measured by cachegrind). */
    PyObject *end_obj = PyLong_FromSsize_t(blank + 4);
    PyObject *bytes_obj = end_obj == NULL ? NULL : PyLong_FromSsize_t(head_bytes);
    PyObject *result = bytes_obj == NULL ? NULL : PyTuple_New(8);
    if (result == NULL) {
        Py_XDECREF(end_obj);
        Py_XDECREF(bytes_obj);
        Py_DECREF(target_obj);
        goto error;
    }
    PyObject *length_obj = content_length ? zero : Py_None;
    Py_INCREF(method);
    Py_INCREF(version);
    Py_INCREF(length_obj);
    PyTuple_SET_ITEM(result, 0, method);  /* steals each */
    PyTuple_SET_ITEM(result, 1, target_obj);
    PyTuple_SET_ITEM(result, 2, version);
    PyTuple_SET_ITEM(result, 3, headers);
    PyTuple_SET_ITEM(result, 4, PyBool_FromLong(keep_alive));
    PyTuple_SET_ITEM(result, 5, end_obj);
    PyTuple_SET_ITEM(result, 6, bytes_obj);
    PyTuple_SET_ITEM(result, 7, length_obj);
    return result;

decline:
    Py_DECREF(headers);
    Py_RETURN_NONE;
error:
    Py_DECREF(headers);
    return NULL;
}

static PyMethodDef methods[] = {
    {"parse_request_head", (PyCFunction)(void (*)(void))parse_request_head, METH_FASTCALL,
     "A plain request head in one call, or None (see ingressd/http/request_head.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.http._request_head",
    "A plain HTTP/1.1 request head in one call (C twin of request_head.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__request_head(void)
{
    const char *token = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (const char *t = token; *t; t++)
        token_char[(unsigned char)*t] = 1;
    for (int c = 0x21; c < 0x7F; c++)
        target_char[c] = 1;
    value_char['\t'] = 1;
    for (int c = 0x20; c < 0x100; c++)
        value_char[c] = c != 0x7F;

    for (int m = 0; m < N_METHODS; m++) {
        if (method_objects[m] == NULL) {
            method_objects[m] = PyBytes_FromString(method_names[m]);
            if (method_objects[m] == NULL)
                return NULL;
        }
    }
    if (version_11 == NULL && (version_11 = PyBytes_FromString("1.1")) == NULL)
        return NULL;
    if (version_10 == NULL && (version_10 = PyBytes_FromString("1.0")) == NULL)
        return NULL;
    if (zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
