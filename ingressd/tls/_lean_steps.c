/* ingressd.tls._lean_steps: the TLS layer's steady-state read and write, one C call each
 * (issue 24: HTTPS keep-alive's per-request Python).
 *
 * The C twin of ingressd/tls/lean_steps.py (read_step_py, write_step_py, drain_py): same
 * arguments, same results; that file's docstring says what they return. ingressd/tls/lean.py
 * uses these when the extension is built, else its own pure-Python steps.
 *
 * No OpenSSL headers and no link flags: the OpenSSL functions are called through the addresses
 * of the ones cryptography's cffi module is linked with (``bind``, once, by lean_steps.py), so
 * these calls reach the very library, and the very SSL and BIO objects, pyOpenSSL's connections
 * use. The SSL and BIO pointers come in as integers (``int(ffi.cast("uintptr_t", p))``); the
 * caller keeps their pyOpenSSL connection alive while it uses them. Unlike cffi's wrappers, the
 * GIL is not released around a call: a memory BIO never blocks. A callback OpenSSL makes into
 * Python during SSL_read (cffi takes the GIL it already holds) may run any Python code: the
 * read buffer is static only for the outermost call (``busy``); a nested one gets its own.
 *
 * Only the CPython C API; every length is checked against INT_MAX before OpenSSL sees it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>

#define CHUNK 65536 /* the most one SSL_read returns: lean.py's _CHUNK */

typedef int (*io_fn)(void *object, void *buffer, int length);   /* SSL_read, BIO_read */
typedef int (*out_fn)(void *object, const void *buffer, int length); /* SSL_write, BIO_write */
typedef int (*error_fn)(const void *ssl, int result);            /* SSL_get_error */
typedef int (*pending_fn)(const void *ssl);                      /* SSL_pending */
typedef long (*info_fn)(void *bio, char **data);                 /* BIO_get_mem_data */

static io_fn ssl_read, bio_read;
static out_fn ssl_write, bio_write;
static error_fn ssl_get_error;
static pending_fn ssl_pending;
static info_fn bio_get_mem_data;
static int want_read = -1;
static int bound = 0;

static char plain[CHUNK];
static int busy = 0;

/* A non-NULL pointer given as an int; NULL with an exception set otherwise. */
static void *
pointer(PyObject *value)
{
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "an address (int) was expected");
        return NULL;
    }
    void *p = PyLong_AsVoidPtr(value);
    if (p == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a NULL address");
    return p;
}

static PyObject *
bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "bind takes exactly 8 arguments");
        return NULL;
    }
    void *p[7];
    for (int i = 0; i < 7; i++) {
        p[i] = pointer(args[i]);
        if (p[i] == NULL)
            return NULL;
    }
    long want = PyLong_AsLong(args[7]);
    if (want == -1 && PyErr_Occurred())
        return NULL;
    /* integer -> function pointer: how cffi's own addresses are taken back as functions */
    ssl_read = (io_fn)(uintptr_t)p[0];
    ssl_write = (out_fn)(uintptr_t)p[1];
    ssl_get_error = (error_fn)(uintptr_t)p[2];
    ssl_pending = (pending_fn)(uintptr_t)p[3];
    bio_read = (io_fn)(uintptr_t)p[4];
    bio_write = (out_fn)(uintptr_t)p[5];
    bio_get_mem_data = (info_fn)(uintptr_t)p[6];
    want_read = (int)want;
    bound = 1;
    Py_RETURN_NONE;
}

static int
check_bound(void)
{
    if (!bound)
        PyErr_SetString(PyExc_RuntimeError, "ingressd.tls._lean_steps: bind() was not called");
    return bound;
}

/* any(helpers): 1, 0, or -1 with an exception (helpers must be a tuple). */
static int
any_problem(PyObject *helpers)
{
    if (!PyTuple_Check(helpers)) {
        PyErr_SetString(PyExc_TypeError, "helpers must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(helpers); i++) {
        PyObject *item = PyTuple_GET_ITEM(helpers, i);
        int truth = PyList_CheckExact(item) ? PyList_GET_SIZE(item) > 0 : PyObject_IsTrue(item);
        if (truth != 0)
            return truth;
    }
    return 0;
}

/* Everything the outgoing memory BIO at ``source`` holds, as bytes; None when it holds nothing. */
static PyObject *
drain_bio(void *source)
{
    long pending = bio_get_mem_data(source, NULL);
    if (pending <= 0)
        Py_RETURN_NONE;
    PyObject *records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)pending);
    if (records == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(records);
    long taken = 0;
    while (taken < pending) { /* bounded: every pass takes at least one byte or stops */
        long want = pending - taken;
        int got = bio_read(source, at + taken, want > (1L << 30) ? (1 << 30) : (int)want);
        if (got <= 0)
            break;
        taken += got;
    }
    if (taken == 0) {
        Py_DECREF(records);
        Py_RETURN_NONE;
    }
    if (taken < pending && _PyBytes_Resize(&records, (Py_ssize_t)taken) < 0)
        return NULL;
    return records;
}

static PyObject *
drain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "drain takes exactly 1 argument");
        return NULL;
    }
    if (!check_bound())
        return NULL;
    void *source = pointer(args[0]);
    return source == NULL ? NULL : drain_bio(source);
}

/* read_step's and write_step's arguments (ssl, bio, data, helpers) checked and taken: 0 with an
 * exception set when one is wrong (the messages name the step, as lean_steps.py's twins do). */
static int
step_arguments(const char *name, PyObject *const *args, Py_ssize_t nargs, void **ssl, void **bio,
               PyObject **data, PyObject **helpers)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "%s takes exactly 4 arguments", name);
        return 0;
    }
    if (!check_bound())
        return 0;
    if ((*ssl = pointer(args[0])) == NULL || (*bio = pointer(args[1])) == NULL)
        return 0;
    *data = args[2];
    *helpers = args[3];
    if (!PyBytes_Check(*data)) {
        PyErr_Format(PyExc_TypeError, "%s: data must be bytes", name);
        return 0;
    }
    if (!PyTuple_Check(*helpers)) {
        PyErr_SetString(PyExc_TypeError, "helpers must be a tuple");
        return 0;
    }
    if (PyBytes_GET_SIZE(*data) > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s: data longer than INT_MAX", name);
        return 0;
    }
    return 1;
}

/* A step's result tuple, filled by hand: Py_BuildValue parses its format string on every call.
 * ``text`` is stolen (this call's own reference, NULL for None); the flag is borrowed. NULL with
 * an exception set (``text`` released) when an allocation fails. */
static PyObject *
step_result(int count, PyObject *text, PyObject *flag, int error)
{
    PyObject *count_obj = PyLong_FromLong(count);
    PyObject *error_obj = count_obj == NULL ? NULL : PyLong_FromLong(error);
    PyObject *result = error_obj == NULL ? NULL : PyTuple_New(4);
    if (result == NULL) {
        Py_XDECREF(count_obj);
        Py_XDECREF(error_obj);
        Py_XDECREF(text);
        return NULL;
    }
    if (text == NULL) {
        text = Py_None;
        Py_INCREF(text);
    }
    Py_INCREF(flag);
    PyTuple_SET_ITEM(result, 0, count_obj); /* steals each */
    PyTuple_SET_ITEM(result, 1, text);
    PyTuple_SET_ITEM(result, 2, flag);
    PyTuple_SET_ITEM(result, 3, error_obj);
    return result;
}

/* read_step(ssl, into, data, helpers): see lean_steps.read_step_py. */
static PyObject *
read_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    void *ssl, *into;
    PyObject *data, *helpers;
    if (!step_arguments("read_step", args, nargs, &ssl, &into, &data, &helpers))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size > 0 && bio_write(into, PyBytes_AS_STRING(data), (int)size) <= 0)
        Py_RETURN_FALSE; /* the caller asks pyOpenSSL's bio_write for its error */

    char *buffer = plain;
    int nested = busy;
    if (nested) {
        buffer = PyMem_Malloc(CHUNK);
        if (buffer == NULL)
            return PyErr_NoMemory();
    }
    busy = 1;
    int count = ssl_read(ssl, buffer, CHUNK);
    int saved_errno = errno;
    busy = nested;

    PyObject *result = NULL;
    int problem = any_problem(helpers);
    if (problem < 0)
        goto done;
    if (!problem && count > 0) {
        /* Every record read when OpenSSL holds none of this one (a read short of the buffer
         * took all of it) and the memory BIO no unread byte. */
        int finished = (count < CHUNK || ssl_pending(ssl) <= 0) && bio_get_mem_data(into, NULL) <= 0;
        PyObject *text = PyBytes_FromStringAndSize(buffer, count);
        if (text == NULL || finished) {
            result = text;
            goto done;
        }
        result = step_result(count, text, Py_False, 0);
        goto done;
    }
    if (!problem && ssl_get_error(ssl, count) == want_read) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    if (count > 0) {
        PyObject *text = PyBytes_FromStringAndSize(buffer, count);
        if (text == NULL)
            goto done;
        result = step_result(count, text, Py_True, saved_errno);
    }
    else {
        result = step_result(count, NULL, Py_True, saved_errno);
    }
done:
    if (nested)
        PyMem_Free(buffer);
    return result;
}

/* write_step(ssl, source, data, helpers): see lean_steps.write_step_py. */
static PyObject *
write_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    void *ssl, *source;
    PyObject *data, *helpers;
    if (!step_arguments("write_step", args, nargs, &ssl, &source, &data, &helpers))
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    int count = ssl_write(ssl, PyBytes_AS_STRING(data), (int)size);
    int saved_errno = errno;
    int problem = any_problem(helpers);
    if (problem < 0)
        return NULL;
    if (!problem && count == size)
        return drain_bio(source);
    /* (count, errno), filled by hand as step_result's */
    PyObject *count_obj = PyLong_FromLong(count);
    PyObject *error_obj = count_obj == NULL ? NULL : PyLong_FromLong(saved_errno);
    PyObject *result = error_obj == NULL ? NULL : PyTuple_New(2);
    if (result == NULL) {
        Py_XDECREF(count_obj);
        Py_XDECREF(error_obj);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, count_obj); /* steals each */
    PyTuple_SET_ITEM(result, 1, error_obj);
    return result;
}

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(SSL_read, SSL_write, SSL_get_error, SSL_pending, BIO_read, BIO_write, BIO_get_mem_data, "
     "SSL_ERROR_WANT_READ): the functions' addresses (ints) to call, once"},
    {"read_step", (PyCFunction)(void (*)(void))read_step, METH_FASTCALL,
     "read_step(ssl, into, data, helpers): records in, one SSL_read (see lean_steps.read_step_py)"},
    {"write_step", (PyCFunction)(void (*)(void))write_step, METH_FASTCALL,
     "write_step(ssl, source, data, helpers): one SSL_write and the drain (see lean_steps.write_step_py)"},
    {"drain", (PyCFunction)(void (*)(void))drain, METH_FASTCALL,
     "drain(source): all the outgoing memory BIO holds, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.tls._lean_steps",
    "The TLS layer's steady-state read and write in one C call each (twin: ingressd/tls/lean_steps.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__lean_steps(void)
{
    return PyModule_Create(&module_def);
}
