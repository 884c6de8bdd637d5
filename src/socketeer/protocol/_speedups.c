/* Optional C speedups for socketeer.protocol.masking and socketeer.protocol.frames: same
 * signatures as the pure-Python references (_py_apply_mask, _py_read_frame,
 * _py_encode_frame), which stay the specification and the fallback. */

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

/* read_frame(buffer, pos, masked) -> (first_byte, payload, end) | None
 *
 * The common case of frame parsing in one call: a whole frame at pos whose header breaks no
 * rule the header alone can tell (reserved opcode, fragmented or long control frame, 64-bit
 * length with its top bit set) and is masked if and only if `masked`. The payload comes out
 * unmasked. Anything else (an incomplete frame, a header to reject) returns None: the caller
 * then parses the frame the slow way, which says what is wrong. */
static PyObject *
read_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, avail, start;
    const unsigned char *p;
    const unsigned char *mask = NULL;
    unsigned char b0, b1, opcode;
    unsigned long long length;
    int masked;
    PyObject *payload, *first_byte, *end, *result;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_frame() takes 3 arguments");
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    masked = PyObject_IsTrue(args[2]);
    if (masked < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || pos > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    p = (const unsigned char *)view.buf + pos;
    avail = view.len - pos;
    if (avail < 2) {
        goto none;
    }
    b0 = p[0];
    b1 = p[1];
    opcode = b0 & 0x0F;
    if ((opcode > 2 && opcode < 8) || opcode > 10) {
        goto none; /* reserved opcode */
    }
    if (((b1 & 0x80) != 0) != (masked != 0)) {
        goto none; /* incorrect masking */
    }
    length = b1 & 0x7F;
    start = 2;
    if (opcode >= 8) {
        if (!(b0 & 0x80) || length > 125) {
            goto none; /* fragmented or long control frame */
        }
    }
    else if (length == 126) {
        if (avail < 4) {
            goto none;
        }
        length = ((unsigned long long)p[2] << 8) | p[3];
        start = 4;
    }
    else if (length == 127) {
        if (avail < 10) {
            goto none;
        }
        length = 0;
        for (int i = 2; i < 10; i++) {
            length = (length << 8) | p[i];
        }
        if (length >> 63) {
            goto none;
        }
        start = 10;
    }
    if (masked) {
        if (avail < start + 4) {
            goto none;
        }
        mask = p + start;
        start += 4;
    }
    if (length > (unsigned long long)(avail - start)) {
        goto none; /* incomplete */
    }
    payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (payload == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (mask != NULL) {
        xor_mask(p + start, (unsigned char *)PyBytes_AS_STRING(payload), (Py_ssize_t)length,
                 mask);
    }
    else {
        memcpy(PyBytes_AS_STRING(payload), p + start, (size_t)length);
    }
    PyBuffer_Release(&view);
    first_byte = PyLong_FromLong(b0);
    end = PyLong_FromSsize_t(pos + start + (Py_ssize_t)length);
    result = PyTuple_New(3);
    if (first_byte == NULL || end == NULL || result == NULL) {
        Py_XDECREF(first_byte);
        Py_XDECREF(end);
        Py_XDECREF(result);
        Py_DECREF(payload);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, first_byte);
    PyTuple_SET_ITEM(result, 1, payload);
    PyTuple_SET_ITEM(result, 2, end);
    return result;

none:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* encode_frame(first_byte, data, mask_key) -> bytes
 *
 * A frame on the wire in one allocation: the header for len(data), the masking key unless
 * mask_key is None, and the payload, masked with mask_key. */
static PyObject *
encode_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    long first_byte;
    Py_ssize_t header, size;
    unsigned char *out;
    int masked;
    PyObject *result;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_frame() takes 3 arguments");
        return NULL;
    }
    first_byte = PyLong_AsLong(args[0]);
    if (first_byte == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (first_byte < 0 || first_byte > 255) {
        PyErr_SetString(PyExc_ValueError, "first_byte must be in range(256)");
        return NULL;
    }
    masked = args[2] != Py_None;
    if (masked) {
        if (PyObject_GetBuffer(args[2], &key, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        if (key.len != 4) {
            PyBuffer_Release(&key);
            PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        if (masked) {
            PyBuffer_Release(&key);
        }
        return NULL;
    }
    size = data.len;
    header = size < 126 ? 2 : size < 0x10000 ? 4 : 10;
    result = PyBytes_FromStringAndSize(NULL, header + (masked ? 4 : 0) + size);
    if (result != NULL) {
        unsigned char mask_bit = masked ? 0x80 : 0;
        out = (unsigned char *)PyBytes_AS_STRING(result);
        out[0] = (unsigned char)first_byte;
        if (header == 2) {
            out[1] = mask_bit | (unsigned char)size;
        }
        else if (header == 4) {
            out[1] = mask_bit | 126;
            out[2] = (unsigned char)(size >> 8);
            out[3] = (unsigned char)size;
        }
        else {
            unsigned long long length = (unsigned long long)size;
            out[1] = mask_bit | 127;
            for (int i = 9; i >= 2; i--) {
                out[i] = (unsigned char)length;
                length >>= 8;
            }
        }
        out += header;
        if (masked) {
            memcpy(out, key.buf, 4);
            xor_mask((const unsigned char *)data.buf, out + 4, size,
                     (const unsigned char *)key.buf);
        }
        else {
            memcpy(out, data.buf, (size_t)size);
        }
    }
    PyBuffer_Release(&data);
    if (masked) {
        PyBuffer_Release(&key);
    }
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_VARARGS | METH_KEYWORDS,
     "Apply a 4-byte mask to data; return the result as bytes."},
    {"read_frame", (PyCFunction)(void (*)(void))read_frame, METH_FASTCALL,
     "Read a whole, valid frame at pos in buffer: (first_byte, payload, end), or None."},
    {"encode_frame", (PyCFunction)(void (*)(void))encode_frame, METH_FASTCALL,
     "Serialize a frame: header, masking key unless None, (masked) payload."},
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
