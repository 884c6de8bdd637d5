/* Optional C speedups for socketeer.protocol.masking: same signatures as the pure-Python
 * reference, which stays the specification and the fallback. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Below this size, releasing the GIL costs more than the loop itself. */
#define RELEASE_GIL_ABOVE 65536

static void
xor_loop(const unsigned char *in, unsigned char *out, Py_ssize_t size,
         const unsigned char *mask)
{
    Py_ssize_t i = 0;
    uint32_t m32;
    uint64_t m64;

    memcpy(&m32, mask, 4);
    m64 = ((uint64_t)m32 << 32) | m32;
    /* Eight bytes at a time; the compiler vectorises this loop further. */
    for (; i + 8 <= size; i += 8) {
        uint64_t chunk;
        memcpy(&chunk, in + i, 8);
        chunk ^= m64;
        memcpy(out + i, &chunk, 8);
    }
    for (; i < size; i++) {
        out[i] = in[i] ^ mask[i & 3];
    }
}

static void
xor_mask(const unsigned char *in, unsigned char *out, Py_ssize_t size,
         const unsigned char *mask)
{
    if (size > RELEASE_GIL_ABOVE) {
        Py_BEGIN_ALLOW_THREADS
        xor_loop(in, out, size, mask);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_loop(in, out, size, mask);
    }
}

static PyObject *
apply_mask(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "mask", NULL};
    Py_buffer data, mask;
    PyObject *result = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*", kwlist, &data, &mask)) {
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    xor_mask((const unsigned char *)data.buf, (unsigned char *)PyBytes_AS_STRING(result),
             data.len, (const unsigned char *)mask.buf);

done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mask);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_VARARGS | METH_KEYWORDS,
     "Apply a 4-byte mask to data; return the result as bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "socketeer.protocol._speedups", "C speedups for socketeer.", -1,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
