/* ingressd.proxy._request_facts: what the request path needs of a request head, in one call
 * (issue 24).
 *
 * The C twin of ingressd/proxy/request_facts.py's request_facts_py: same arguments, same
 * results, same None for a target that needs the general steps. That file's docstring says
 * what it returns; the tests run every case through both and fuzz them against each other.
 *
 * request_facts(target: bytes, pairs, forwarded_names, spoofable) -> None | (path, query,
 *               target, host, request_id, upgrade, has_connection, spoofed, forwarded)
 *
 * Only the CPython C API; every read is within the bytes objects' sizes. ``forwarded_names``
 * and ``spoofable`` are asked with PySequence_Contains, which may run Python code for other
 * containers than sets of bytes: the pairs are re-checked before each read, and the values
 * kept are strong references.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static int
is_name(const char *name, Py_ssize_t len, const char *literal, Py_ssize_t literal_len)
{
    return len == literal_len && memcmp(name, literal, (size_t)literal_len) == 0;
}

/* Replace the strong reference in *slot with a new one to value. */
static void
keep(PyObject **slot, PyObject *value)
{
    PyObject *old = *slot;
    Py_INCREF(value);
    *slot = value;
    Py_XDECREF(old);
}

static PyObject *
request_facts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "request_facts takes exactly 4 arguments");
        return NULL;
    }
    PyObject *target = args[0], *forwarded_names = args[2], *spoofable = args[3];
    if (!PyBytes_Check(target)) {
        PyErr_SetString(PyExc_TypeError, "request_facts: target must be bytes");
        return NULL;
    }
    const char *t = PyBytes_AS_STRING(target);
    Py_ssize_t size = PyBytes_GET_SIZE(target);
    if (size == 0 || t[0] != '/')
        Py_RETURN_NONE;
    Py_ssize_t query_at = -1;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '#')
            Py_RETURN_NONE;
        if (c == '?' && query_at < 0)
            query_at = i;
    }
    Py_ssize_t path_len = query_at < 0 ? size : query_at;
    for (Py_ssize_t i = 0; i < path_len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '%' || c >= 0x80)
            Py_RETURN_NONE;
        if (c == '/' && i + 1 < path_len && (t[i + 1] == '.' || t[i + 1] == '/'))
            Py_RETURN_NONE;
    }

    PyObject *pairs = PySequence_Fast(args[1], "request_facts: pairs must be a sequence");
    if (pairs == NULL)
        return NULL;
    PyObject *host = NULL, *rid = NULL, *upgrade = NULL, *result = NULL;
    int connection = 0, spoofed = 0, forwarded = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(pairs); i++) { /* the size re-read: see above */
        PyObject *item = PySequence_Fast_GET_ITEM(pairs, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0))) {
            PyErr_SetString(PyExc_TypeError, "request_facts: a header must be a (bytes name, value) tuple");
            goto done;
        }
        PyObject *name = PyTuple_GET_ITEM(item, 0);
        PyObject *value = PyTuple_GET_ITEM(item, 1);
        const char *n = PyBytes_AS_STRING(name);
        Py_ssize_t len = PyBytes_GET_SIZE(name);
        if (is_name(n, len, "host", 4)) {
            keep(&host, value);
        } else if (is_name(n, len, "x-request-id", 12)) {
            keep(&rid, value);
        } else if (is_name(n, len, "upgrade", 7)) {
            keep(&upgrade, value);
        } else if (is_name(n, len, "connection", 10)) {
            connection = 1;
        } else {
            int prefixed = len >= 12 && memcmp(n, "x-forwarded-", 12) == 0;
            /* ``item`` is held while a container is asked (it may run Python code) */
            Py_INCREF(item);
            int listed = PySequence_Contains(prefixed ? forwarded_names : spoofable, name);
            Py_DECREF(item);
            if (listed < 0)
                goto done;
            if (prefixed) {
                forwarded = 1;
                if (!listed)
                    spoofed = 1;
            } else if (listed) {
                spoofed = 1;
            }
        }
    }
    PyObject *path = PyUnicode_DecodeASCII(t, path_len, NULL);
    if (path == NULL)
        goto done;
    PyObject *query = query_at < 0 ? PyBytes_FromStringAndSize(NULL, 0)
                                   : PyBytes_FromStringAndSize(t + query_at + 1, size - query_at - 1);
    if (query == NULL) {
        Py_DECREF(path);
        goto done;
    }
    /* The result tuple filled by hand (Py_BuildValue parses its format string on every call). */
    result = PyTuple_New(9);
    if (result == NULL) {
        Py_DECREF(path);
        Py_DECREF(query);
        goto done;
    }
    PyObject *items[9] = {path, query, target, host ? host : Py_None, rid ? rid : Py_None,
                          upgrade ? upgrade : Py_None, connection ? Py_True : Py_False,
                          spoofed ? Py_True : Py_False, forwarded ? Py_True : Py_False};
    for (int i = 0; i < 9; i++) {
        if (i > 1)  /* path and query are this call's own: handed over */
            Py_INCREF(items[i]);
        PyTuple_SET_ITEM(result, i, items[i]);  /* steals */
    }
done:
    Py_XDECREF(host);
    Py_XDECREF(rid);
    Py_XDECREF(upgrade);
    Py_DECREF(pairs);
    return result;
}

static PyMethodDef methods[] = {
    {"request_facts", (PyCFunction)(void (*)(void))request_facts, METH_FASTCALL,
     "What the request path needs of a request head, or None (see ingressd/proxy/request_facts.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.proxy._request_facts",
    "What the request path needs of a request head, in one call (C twin of request_facts.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__request_facts(void)
{
    return PyModule_Create(&module_def);
}
