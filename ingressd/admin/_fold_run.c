/* ingressd.admin._fold_run: a run of finished exchanges of one route, method and status counted
 * in one call (issue 24).
 *
 * The C twin of ingressd/admin/fold_run.py's count_run_py: same arguments, same results, same
 * index returned. That file's docstring says which exchanges are counted ("plain") and which
 * are left to Metrics.fold's own lines; the tests run both on every case and fuzz them against
 * each other and against fold's lines.
 *
 * count_run(held, start, entry, method, status, counter, histogram, response_cell,
 *           request_cell, upstream_histogram) -> int
 *
 * Only the CPython C API. Every attribute is read before anything is counted; the bucket
 * counts, the sums and the byte totals are kept here and written once at the run's end (the
 * cells are checked first, so the writes cannot fail but for memory). The bucket is found by
 * bisect_left's own binary search, with the same comparisons on the same doubles.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_BOUNDS 31

typedef struct {
    PyObject *counts;   /* a strong reference while the run is counted (histogram_release) */
    double bounds[MAX_BOUNDS];
    Py_ssize_t n;       /* number of bounds */
    long long added[MAX_BOUNDS + 1];
    double sum;
} Histogram;

static int
cell_ok(PyObject *cell)
{
    return PyList_CheckExact(cell) && PyList_GET_SIZE(cell) >= 1 && PyLong_CheckExact(PyList_GET_ITEM(cell, 0));
}

/* 1: the histogram's parts read into h; 0: not what Metrics builds; -1: an error raised. */
static int
histogram_read(PyObject *histogram, Histogram *h)
{
    int ok = 0;
    PyObject *bounds = PyObject_GetAttrString(histogram, "bounds");
    PyObject *counts = bounds ? PyObject_GetAttrString(histogram, "counts") : NULL;
    PyObject *sum = counts ? PyObject_GetAttrString(histogram, "sum") : NULL;
    if (sum == NULL) {
        ok = -1;
        goto done;
    }
    if (!PyTuple_CheckExact(bounds) || PyTuple_GET_SIZE(bounds) > MAX_BOUNDS || !PyList_CheckExact(counts)
            || PyList_GET_SIZE(counts) != PyTuple_GET_SIZE(bounds) + 1 || !PyFloat_CheckExact(sum))
        goto done;
    h->n = PyTuple_GET_SIZE(bounds);
    for (Py_ssize_t i = 0; i < h->n; i++) {
        PyObject *bound = PyTuple_GET_ITEM(bounds, i);
        if (!PyFloat_CheckExact(bound))
            goto done;
        h->bounds[i] = PyFloat_AS_DOUBLE(bound);
    }
    for (Py_ssize_t i = 0; i <= h->n; i++) {
        if (!PyLong_CheckExact(PyList_GET_ITEM(counts, i)))
            goto done;
        h->added[i] = 0;
    }
    h->counts = counts;
    counts = NULL;  /* kept: an attribute read during the run may replace the histogram's list */
    h->sum = PyFloat_AS_DOUBLE(sum);
    ok = 1;
done:
    Py_XDECREF(bounds);
    Py_XDECREF(counts);
    Py_XDECREF(sum);
    return ok;
}

static void
histogram_release(Histogram *h)
{
    Py_CLEAR(h->counts);
}

/* bisect.bisect_left's loop: the first index whose bound is not below value. */
static Py_ssize_t
bucket(const Histogram *h, double value)
{
    Py_ssize_t lo = 0, hi = h->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (h->bounds[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* cell[0] += added (cell checked by cell_ok, or a counts list checked by histogram_read). */
static int
add_to(PyObject *list, Py_ssize_t index, long long added)
{
    if (added == 0)
        return 0;
    PyObject *delta = PyLong_FromLongLong(added);
    if (delta == NULL)
        return -1;
    PyObject *value = PyNumber_Add(PyList_GET_ITEM(list, index), delta);
    Py_DECREF(delta);
    if (value == NULL)
        return -1;
    return PyList_SetItem(list, index, value);  /* steals value */
}

static int
set_sum(PyObject *histogram, double sum)
{
    PyObject *value = PyFloat_FromDouble(sum);
    if (value == NULL)
        return -1;
    int failed = PyObject_SetAttrString(histogram, "sum", value);
    Py_DECREF(value);
    return failed;
}

/* The attributes an exchange is counted by; strong references, or all NULL. */
enum { A_STATUS, A_METHOD, A_STARTED, A_SENT, A_RECEIVED, A_ENDED, A_UPSTREAM_STARTED, A_RETRIES,
       A_ANSWERED, A_COUNT };
static const char *const NAMES[A_COUNT] = {"status", "method", "started", "bytes_sent", "request_bytes",
                                           "upstream_ended", "upstream_started", "retries", "answered_by"};
static PyObject *names[A_COUNT];
static PyObject *entry_name;

static void
release(PyObject **values)
{
    for (int i = 0; i < A_COUNT; i++)
        Py_CLEAR(values[i]);
}

/* 1: read; 0: an Exception raised (cleared: fold's lines meet it again); -1: another error. */
static int
read_attributes(PyObject *exchange, PyObject **values)
{
    for (int i = 0; i < A_COUNT; i++) {
        values[i] = PyObject_GetAttr(exchange, names[i]);
        if (values[i] == NULL) {
            release(values);
            if (PyErr_ExceptionMatches(PyExc_Exception)) {
                PyErr_Clear();
                return 0;
            }
            return -1;
        }
    }
    return 1;
}

static PyObject *
count_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "count_run takes 10 arguments");
        return NULL;
    }
    PyObject *held = args[0], *entry = args[2], *method = args[3], *status = args[4], *counter = args[5];
    PyObject *histogram = args[6], *response_cell = args[7], *request_cell = args[8], *upstream = args[9];
    if (!PyList_CheckExact(held) || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "count_run: held must be a list and start an int >= 0");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start < 0) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "count_run: held must be a list and start an int >= 0");
        }
        return NULL;
    }
    if (!PyLong_CheckExact(status) || !PyBytes_CheckExact(method))
        return PyLong_FromSsize_t(start);
    int overflow = 0;
    long status_value = PyLong_AsLongAndOverflow(status, &overflow);
    if (overflow || status_value == 101 || (status_value >= 502 && status_value <= 504))
        return PyLong_FromSsize_t(start);
    if (!cell_ok(counter) || !cell_ok(response_cell) || !cell_ok(request_cell) || histogram == upstream)
        return PyLong_FromSsize_t(start);
    Histogram h = {0}, up = {0};
    PyObject *result = NULL;
    int got = histogram_read(histogram, &h);
    if (got == 1)
        got = histogram_read(upstream, &up);
    if (got < 0)
        goto error;
    if (got == 0 || h.counts == up.counts) {
        result = PyLong_FromSsize_t(start);
        goto error;  /* (the references released; result returned) */
    }

    long long runs = 0, sent_total = 0, received_total = 0;
    Py_ssize_t index = start;
    PyObject *values[A_COUNT] = {NULL};
    while (index < PyList_GET_SIZE(held)) {
        PyObject *item = PyList_GET_ITEM(held, index);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) < 2 || PyTuple_GET_SIZE(item) > 3)
            break;
        Py_INCREF(item);  /* an attribute read may run code that changes held */
        /* (exchange, clock) or a round's note (exchange, wall time, clock): the clock is the last */
        PyObject *exchange = PyTuple_GET_ITEM(item, 0), *now = PyTuple_GET_ITEM(item, PyTuple_GET_SIZE(item) - 1);
        PyObject *this_entry = PyObject_GetAttr(exchange, entry_name);
        int read;
        if (this_entry == NULL) {
            read = PyErr_ExceptionMatches(PyExc_Exception) ? 0 : -1;
            if (read == 0)
                PyErr_Clear();
        } else {
            int same = this_entry == entry;
            Py_DECREF(this_entry);
            read = same ? read_attributes(exchange, values) : 0;
        }
        if (read <= 0) {
            Py_DECREF(item);
            if (read < 0)
                goto error;
            break;
        }
        /* status and method compared as fold's "!=" does, for an int and bytes */
        int plain = PyLong_CheckExact(values[A_STATUS]) && PyBytes_CheckExact(values[A_METHOD]);
        if (plain) {
            long this_status = PyLong_AsLongAndOverflow(values[A_STATUS], &overflow);
            plain = !overflow && this_status == status_value
                && PyBytes_GET_SIZE(values[A_METHOD]) == PyBytes_GET_SIZE(method)
                && memcmp(PyBytes_AS_STRING(values[A_METHOD]), PyBytes_AS_STRING(method),
                          (size_t)PyBytes_GET_SIZE(method)) == 0;
        }
        plain = plain && PyFloat_CheckExact(now) && PyFloat_CheckExact(values[A_STARTED])
            && PyFloat_CheckExact(values[A_ENDED]) && PyFloat_CheckExact(values[A_UPSTREAM_STARTED])
            && PyLong_CheckExact(values[A_SENT]) && PyLong_CheckExact(values[A_RECEIVED])
            && PyLong_CheckExact(values[A_RETRIES]) && PyUnicode_CheckExact(values[A_ANSWERED]);
        long long sent = 0, received = 0;
        if (plain) {
            int o1 = 0, o2 = 0, o3 = 0;
            long retries = PyLong_AsLongAndOverflow(values[A_RETRIES], &o3);
            sent = PyLong_AsLongLongAndOverflow(values[A_SENT], &o1);
            received = PyLong_AsLongLongAndOverflow(values[A_RECEIVED], &o2);
            plain = !o1 && !o2 && !o3 && retries == 0
                && !(PyUnicode_GET_LENGTH(values[A_ANSWERED]) > 0 && status_value >= 400)
                && !__builtin_add_overflow(sent_total, sent, &sent)
                && !__builtin_add_overflow(received_total, received, &received);
        }
        if (!plain) {
            release(values);
            Py_DECREF(item);
            break;
        }
        sent_total = sent;  /* the run's totals with this exchange's counts */
        received_total = received;
        double duration = PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(values[A_STARTED]);
        h.added[bucket(&h, duration)] += 1;
        h.sum += duration;
        double ended = PyFloat_AS_DOUBLE(values[A_ENDED]);
        double upstream_started = PyFloat_AS_DOUBLE(values[A_UPSTREAM_STARTED]);
        double upstream_time = ended != 0.0 ? ended - upstream_started : -1.0;
        if (upstream_time >= 0 && upstream_started != 0.0) {
            up.added[bucket(&up, upstream_time)] += 1;
            up.sum += upstream_time;
        }
        release(values);
        Py_DECREF(item);
        runs += 1;
        index += 1;
    }
    if (runs) {
        /* the cells were checked above; code run by an attribute read may have changed them */
        if (!cell_ok(counter) || !cell_ok(response_cell) || !cell_ok(request_cell)) {
            PyErr_SetString(PyExc_RuntimeError, "count_run: a cell changed while counting");
            goto error;
        }
        if (add_to(counter, 0, runs) < 0 || add_to(response_cell, 0, sent_total) < 0
                || add_to(request_cell, 0, received_total) < 0)
            goto error;
        for (Py_ssize_t i = 0; i <= h.n; i++)
            if (add_to(h.counts, i, h.added[i]) < 0)
                goto error;
        for (Py_ssize_t i = 0; i <= up.n; i++)
            if (add_to(up.counts, i, up.added[i]) < 0)
                goto error;
        if (set_sum(histogram, h.sum) < 0 || set_sum(upstream, up.sum) < 0)
            goto error;
    }
    result = PyLong_FromSsize_t(index);
error:
    histogram_release(&h);
    histogram_release(&up);
    return result;
}

static PyMethodDef methods[] = {
    {"count_run", (PyCFunction)(void (*)(void))count_run, METH_FASTCALL,
     "count_run(held, start, entry, method, status, counter, histogram, response_cell, request_cell, "
     "upstream_histogram) -> int: the index of the first exchange not counted"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.admin._fold_run",
    "A run of finished exchanges counted in one call (the C twin of fold_run.count_run_py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__fold_run(void)
{
    for (int i = 0; i < A_COUNT; i++) {
        if (names[i] == NULL && (names[i] = PyUnicode_InternFromString(NAMES[i])) == NULL)
            return NULL;
    }
    if (entry_name == NULL && (entry_name = PyUnicode_InternFromString("entry")) == NULL)
        return NULL;
    return PyModule_Create(&module_def);
}
