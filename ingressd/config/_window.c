/* ingressd.config._window: where two lists or tuples differ, by identity (issue 24).
 *
 * The C twin of ingressd/config/window.py's window_py: same arguments, same (start, old_end,
 * new_end). At 10,000 Ingresses a one-Ingress change compares the 30,000 routes (and their
 * entries) of two configurations a few times; the Python twin's C iterators cost ~60 ns an
 * element there (a call to operator.is_not each), this a pointer comparison.
 *
 * window(old, new) -> (start, old_end, new_end). Lists and tuples only (exactly, or their
 * subclasses: the items are read as stored); anything else raises TypeError, and the caller
 * uses the twin. No Python code runs while the items are compared, so a list cannot change
 * under the loops.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* 0: the items and their count in *items and *size; -1: TypeError raised. (An empty list's
 * item array is NULL: the count says how many there are.) */
static int
items_of(PyObject *seq, PyObject ***items, Py_ssize_t *size)
{
    if (PyList_Check(seq)) {
        *size = PyList_GET_SIZE(seq);
        *items = ((PyListObject *)seq)->ob_item;
        return 0;
    }
    if (PyTuple_Check(seq)) {
        *size = PyTuple_GET_SIZE(seq);
        *items = ((PyTupleObject *)seq)->ob_item;
        return 0;
    }
    PyErr_SetString(PyExc_TypeError, "window() takes lists or tuples");
    return -1;
}

static PyObject *
window(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t old_size, new_size;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "window(old, new) takes two arguments");
        return NULL;
    }
    PyObject **old, **new;
    if (items_of(args[0], &old, &old_size) < 0 || items_of(args[1], &new, &new_size) < 0)
        return NULL;
    Py_ssize_t shorter = old_size < new_size ? old_size : new_size;
    Py_ssize_t start = 0;
    while (start < shorter && old[start] == new[start])
        start++;
    Py_ssize_t tail = 0;
    Py_ssize_t room = shorter - start;  /* the window starts at ``start`` in both */
    while (tail < room && old[old_size - 1 - tail] == new[new_size - 1 - tail])
        tail++;
    return Py_BuildValue("(nnn)", start, old_size - tail, new_size - tail);
}

static PyMethodDef methods[] = {
    {"window", (PyCFunction)(void (*)(void))window, METH_FASTCALL,
     "window(old, new) -> (start, old_end, new_end): where two lists or tuples differ, by identity"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "ingressd.config._window",
    "Where two sequences differ, by identity (the C twin of window.window_py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__window(void)
{
    return PyModule_Create(&module_def);
}
