/* ingressd.proxy._backend_request: a backend request's head as bytes in one call (issue 24).
 *
 * The C twin of ingressd/proxy/backend_request.py's backend_request_head_py: same arguments,
 * same bytes, same exceptions for the types it refuses. That file's docstring says what the
 * head holds; the tests run every case through both and fuzz them against each other.
 *
 * backend_request_head(method: bytes, target: bytes, version: bytes, pairs, drop, extra,
 *                      body_length: int | None) -> bytes
 *
 * Only the CPython C API. The pairs are first asked of ``drop`` (which may run Python code:
 * the list is re-checked), then every kept item is checked and its length added up with no
 * Python code running, then copied into one bytes object of exactly that length.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The pair at ``item`` as (name, value) bytes, or -1 with TypeError set. Borrowed refs. */
static int
pair_of(PyObject *item, PyObject **name, PyObject **value)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "backend_request_head: a header must be a (name, value) tuple");
        return -1;
    }
    *name = PyTuple_GET_ITEM(item, 0);
    *value = PyTuple_GET_ITEM(item, 1);
    if (!PyBytes_Check(*name) || !PyBytes_Check(*value)) {
        PyErr_SetString(PyExc_TypeError, "backend_request_head: header names and values must be bytes");
        return -1;
    }
    return 0;
}

/* Add ``n`` to ``*total``; -1 with OverflowError when the head could not be one bytes object. */
static int
add_length(Py_ssize_t *total, Py_ssize_t n)
{
    if (n < 0 || *total > PY_SSIZE_T_MAX - n) {
        PyErr_SetString(PyExc_OverflowError, "backend_request_head: the head is too large");
        return -1;
    }
    *total += n;
    return 0;
}

static char *
put(char *out, PyObject *bytes)
{
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    memcpy(out, PyBytes_AS_STRING(bytes), (size_t)n);
    return out + n;
}

/* "name: value\r\n" */
static char *
put_line(char *out, PyObject *name, PyObject *value)
{
    out = put(out, name);
    *out++ = ':';
    *out++ = ' ';
    out = put(out, value);
    *out++ = '\r';
    *out++ = '\n';
    return out;
}

static PyObject *
backend_request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "backend_request_head takes exactly 7 arguments");
        return NULL;
    }
    PyObject *method = args[0], *target = args[1], *version = args[2];
    PyObject *drop = args[4], *length_obj = args[6];
    if (!PyBytes_Check(method) || !PyBytes_Check(target) || !PyBytes_Check(version)) {
        PyErr_SetString(PyExc_TypeError, "backend_request_head: method, target and version must be bytes");
        return NULL;
    }
    PyObject *length_text = NULL; /* the body length in decimal (int.__repr__), or NULL */
    if (length_obj != Py_None) {
        if (!PyLong_Check(length_obj)) {
            PyErr_SetString(PyExc_TypeError, "backend_request_head: body_length must be an int or None");
            return NULL;
        }
        /* int.__repr__ as b"%d" % length formats it, a bool included ("1", not "True") */
        PyObject *text = PyLong_Type.tp_repr(length_obj);
        if (text == NULL)
            return NULL;
        length_text = PyUnicode_AsASCIIString(text);
        Py_DECREF(text);
        if (length_text == NULL)
            return NULL;
    }
    PyObject *pairs = PySequence_Fast(args[3], "backend_request_head: pairs must be a sequence");
    if (pairs == NULL) {
        Py_XDECREF(length_text);
        return NULL;
    }
    PyObject *extra = PySequence_Fast(args[5], "backend_request_head: extra must be a sequence");
    if (extra == NULL) {
        Py_DECREF(pairs);
        Py_XDECREF(length_text);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n_pairs = PySequence_Fast_GET_SIZE(pairs);
    /* kept[i]: pairs[i] goes to the backend (``drop`` does not name it) */
    unsigned char *kept = PyMem_Malloc(n_pairs > 0 ? (size_t)n_pairs : 1);
    if (kept == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* "METHOD target HTTP/version\r\n" ... "\r\n" */
    Py_ssize_t total = 0;
    if (add_length(&total, PyBytes_GET_SIZE(method)) < 0 || add_length(&total, PyBytes_GET_SIZE(target)) < 0
            || add_length(&total, PyBytes_GET_SIZE(version)) < 0 || add_length(&total, 1 + 6 + 2 + 2) < 0)
        goto done;
    PyObject *name, *value;
    for (Py_ssize_t i = 0; i < n_pairs; i++) {
        /* ``drop.__contains__`` may run Python code (a set's own is C for bytes): the list
         * is checked to still hold the pair before each read, and the name is held while asked */
        if (i >= PySequence_Fast_GET_SIZE(pairs)) {
            PyErr_SetString(PyExc_RuntimeError, "backend_request_head: pairs changed while read");
            goto done;
        }
        if (pair_of(PySequence_Fast_GET_ITEM(pairs, i), &name, &value) < 0)
            goto done;
        Py_INCREF(name);
        int named = PySequence_Contains(drop, name);
        Py_DECREF(name);
        if (named < 0)
            goto done;
        kept[i] = (unsigned char)!named;
    }
    /* No Python code runs from here on: the sequences stay as they are now. */
    if (PySequence_Fast_GET_SIZE(pairs) != n_pairs) {
        PyErr_SetString(PyExc_RuntimeError, "backend_request_head: pairs changed while read");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_pairs; i++) {
        if (!kept[i])
            continue;
        if (pair_of(PySequence_Fast_GET_ITEM(pairs, i), &name, &value) < 0)
            goto done;
        if (add_length(&total, PyBytes_GET_SIZE(name)) < 0 || add_length(&total, PyBytes_GET_SIZE(value)) < 0
                || add_length(&total, 4) < 0)
            goto done;
    }
    Py_ssize_t n_extra = PySequence_Fast_GET_SIZE(extra);
    for (Py_ssize_t i = 0; i < n_extra; i++) {
        if (pair_of(PySequence_Fast_GET_ITEM(extra, i), &name, &value) < 0)
            goto done;
        if (add_length(&total, PyBytes_GET_SIZE(name)) < 0 || add_length(&total, PyBytes_GET_SIZE(value)) < 0
                || add_length(&total, 4) < 0)
            goto done;
    }
    if (length_text != NULL && add_length(&total, 16 + PyBytes_GET_SIZE(length_text) + 2) < 0)
        goto done;

    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result);
    char *end = out + total;
    out = put(out, method);
    *out++ = ' ';
    out = put(out, target);
    memcpy(out, " HTTP/", 6);
    out += 6;
    out = put(out, version);
    *out++ = '\r';
    *out++ = '\n';
    for (Py_ssize_t i = 0; i < n_pairs; i++) {
        if (kept[i]) {
            pair_of(PySequence_Fast_GET_ITEM(pairs, i), &name, &value); /* checked when counted */
            out = put_line(out, name, value);
        }
    }
    for (Py_ssize_t i = 0; i < n_extra; i++) {
        pair_of(PySequence_Fast_GET_ITEM(extra, i), &name, &value);
        out = put_line(out, name, value);
    }
    if (length_text != NULL) {
        memcpy(out, "content-length: ", 16);
        out += 16;
        out = put(out, length_text);
        *out++ = '\r';
        *out++ = '\n';
    }
    *out++ = '\r';
    *out++ = '\n';
    if (out != end) { /* cannot happen: both passes count the same bytes */
        PyErr_SetString(PyExc_SystemError, "backend_request_head: length miscounted");
        Py_CLEAR(result);
    }
done:
    PyMem_Free(kept);
    Py_DECREF(pairs);
    Py_DECREF(extra);
    Py_XDECREF(length_text);
    return result;
}

static PyMethodDef methods[] = {
    {"backend_request_head", (PyCFunction)(void (*)(void))backend_request_head, METH_FASTCALL,
     "A backend request's head as bytes in one call (see ingressd/proxy/backend_request.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.proxy._backend_request",
    "A backend request's head in one call (C twin of backend_request.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__backend_request(void)
{
    return PyModule_Create(&module_def);
}
