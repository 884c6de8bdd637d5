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

/* Where the frame whose header starts at p (avail bytes from there) has its payload: sets
 * *length, *start (its offset from p) and *mask (NULL when unmasked, i.e. when not
 * `masked`); returns 0 when the header or the payload is incomplete, or when a 64-bit
 * length has its top bit set. The first byte and the masking bit are the caller's. */
static int
frame_extent(const unsigned char *p, Py_ssize_t avail, int masked,
             unsigned long long *length, Py_ssize_t *start, const unsigned char **mask)
{
    *length = p[1] & 0x7F;
    *start = 2;
    if (*length == 126) {
        if (avail < 4) {
            return 0;
        }
        *length = ((unsigned long long)p[2] << 8) | p[3];
        *start = 4;
    }
    else if (*length == 127) {
        if (avail < 10) {
            return 0;
        }
        *length = 0;
        for (int i = 2; i < 10; i++) {
            *length = (*length << 8) | p[i];
        }
        if (*length >> 63) {
            return 0;
        }
        *start = 10;
    }
    *mask = NULL;
    if (masked) {
        if (avail < *start + 4) {
            return 0;
        }
        *mask = p + *start;
        *start += 4;
    }
    return *length <= (unsigned long long)(avail - *start);
}

/* A new bytes object with the payload at p, unmasked with mask unless NULL. */
static PyObject *
new_payload(const unsigned char *p, unsigned long long length, const unsigned char *mask)
{
    PyObject *payload = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);

    if (payload == NULL) {
        return NULL;
    }
    if (mask != NULL) {
        xor_mask(p, (unsigned char *)PyBytes_AS_STRING(payload), (Py_ssize_t)length, mask);
    }
    else {
        memcpy(PyBytes_AS_STRING(payload), p, (size_t)length);
    }
    return payload;
}

/* The arguments (buffer, pos, masked) of the readers below: acquires the buffer; returns -1
 * with an exception set, and nothing acquired, when one is wrong. */
static int
reader_arguments(PyObject *const *args, Py_buffer *view, Py_ssize_t *pos, int *masked)
{
    *pos = PyLong_AsSsize_t(args[1]);
    if (*pos == -1 && PyErr_Occurred()) {
        return -1;
    }
    *masked = PyObject_IsTrue(args[2]);
    if (*masked < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (*pos < 0 || *pos > view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return -1;
    }
    return 0;
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
    const unsigned char *mask;
    unsigned char b0, b1, opcode;
    unsigned long long length;
    int masked;
    PyObject *payload, *first_byte, *end, *result;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_frame() takes 3 arguments");
        return NULL;
    }
    if (reader_arguments(args, &view, &pos, &masked) < 0) {
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
    if (opcode >= 8 && (!(b0 & 0x80) || (b1 & 0x7F) > 125)) {
        goto none; /* fragmented or long control frame */
    }
    if (!frame_extent(p, avail, masked, &length, &start, &mask)) {
        goto none; /* incomplete */
    }
    payload = new_payload(p + start, length, mask);
    if (payload == NULL) {
        PyBuffer_Release(&view);
        return NULL;
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

/* Set by set_frame_types(): the Frame class (a NamedTuple of six fields) and the opcodes
 * of text and binary frames, which read_messages() puts in the frames it builds. */
static PyTypeObject *frame_type = NULL;
static PyObject *op_text = NULL, *op_binary = NULL;

static PyObject *
set_frame_types(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0])
        || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "set_frame_types(Frame, OP_TEXT, OP_BINARY)");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(frame_type, (PyTypeObject *)args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(op_text, args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(op_binary, args[2]);
    Py_RETURN_NONE;
}

/* read_messages(buffer, pos, masked, max_size, limit, events) -> end
 *
 * The loop of frame parsing for its common case, in one call: from pos, append to events a
 * Frame for each whole message of one frame (first byte 0x81 or 0x82: final, no RSV bit),
 * masked if and only if `masked`, no larger than max_size, valid UTF-8 if text, at most
 * `limit` of them; max_size and limit -1 mean no limit. Stops before anything else (an
 * incomplete frame, a control frame, a fragment, any fault), which the caller parses the
 * slow way; returns the position after the last frame read. */
static PyObject *
read_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos, max_size, limit, count = 0;
    int masked;
    PyObject *events;

    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "read_messages() takes 6 arguments");
        return NULL;
    }
    if (frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_frame_types() was not called");
        return NULL;
    }
    max_size = PyLong_AsSsize_t(args[3]);
    if (max_size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    limit = PyLong_AsSsize_t(args[4]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    events = args[5];
    if (!PyList_Check(events)) {
        PyErr_SetString(PyExc_TypeError, "events must be a list");
        return NULL;
    }
    if (reader_arguments(args, &view, &pos, &masked) < 0) {
        return NULL;
    }
    while (limit < 0 || count < limit) {
        const unsigned char *p = (const unsigned char *)view.buf + pos;
        const unsigned char *mask;
        Py_ssize_t avail = view.len - pos, start;
        unsigned long long length;
        unsigned char b0;
        PyObject *payload, *frame, *opcode;

        if (avail < 2) {
            break;
        }
        b0 = p[0];
        if (b0 != 0x81 && b0 != 0x82) {
            break;
        }
        if (((p[1] & 0x80) != 0) != (masked != 0)) {
            break; /* incorrect masking */
        }
        if (!frame_extent(p, avail, masked, &length, &start, &mask)) {
            break; /* incomplete */
        }
        if (max_size >= 0 && length > (unsigned long long)max_size) {
            break; /* too big */
        }
        payload = new_payload(p + start, length, mask);
        if (payload == NULL) {
            goto error;
        }
        if (b0 == 0x81) {
            /* Validates the UTF-8 (RFC 6455 section 8.1), as bytes.decode() does. */
            PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(payload),
                                                  (Py_ssize_t)length, "strict");
            if (text == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    Py_DECREF(payload);
                    goto error;
                }
                PyErr_Clear();
                Py_DECREF(payload);
                break; /* invalid: the slow way says so */
            }
            Py_DECREF(text);
        }
        frame = frame_type->tp_alloc(frame_type, 6);
        if (frame == NULL) {
            Py_DECREF(payload);
            goto error;
        }
        opcode = b0 == 0x81 ? op_text : op_binary;
        Py_INCREF(opcode);
        PyTuple_SET_ITEM(frame, 0, opcode);
        PyTuple_SET_ITEM(frame, 1, payload);
        Py_INCREF(Py_True);
        PyTuple_SET_ITEM(frame, 2, Py_True);
        Py_INCREF(Py_False);
        PyTuple_SET_ITEM(frame, 3, Py_False);
        Py_INCREF(Py_False);
        PyTuple_SET_ITEM(frame, 4, Py_False);
        Py_INCREF(Py_False);
        PyTuple_SET_ITEM(frame, 5, Py_False);
        if (PyList_Append(events, frame) < 0) {
            Py_DECREF(frame);
            goto error;
        }
        Py_DECREF(frame);
        pos += start + (Py_ssize_t)length;
        count++;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos);

error:
    PyBuffer_Release(&view);
    return NULL;
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


/* PayloadBuffer: a bytes object filled in place, so that a large payload can be read from
 * the socket straight into the object the application gets, without a copy. The bytes
 * object is fresh and unshared (at least 2 bytes: shorter ones may be cached singletons),
 * nobody else sees it until take() hands it over, and its hash is not computed before. */

typedef struct {
    PyObject_HEAD
    PyObject *bytes; /* NULL once handed over by take() */
    Py_ssize_t exports;
    int taken;
} PayloadBufferObject;

static PyObject *
PayloadBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", NULL};
    Py_ssize_t size;
    PayloadBufferObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:PayloadBuffer", kwlist, &size)) {
        return NULL;
    }
    if (size < 2) {
        PyErr_SetString(PyExc_ValueError, "size must be at least 2");
        return NULL;
    }
    self = (PayloadBufferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->bytes = PyBytes_FromStringAndSize(NULL, size);
    if (self->bytes == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->exports = 0;
    self->taken = 0;
    return (PyObject *)self;
}

static void
PayloadBuffer_dealloc(PayloadBufferObject *self)
{
    Py_XDECREF(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
PayloadBuffer_getbuffer(PayloadBufferObject *self, Py_buffer *view, int flags)
{
    if (self->taken) {
        PyErr_SetString(PyExc_BufferError, "payload was taken");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->bytes),
                          PyBytes_GET_SIZE(self->bytes), 0, flags) < 0) {
        return -1;
    }
    self->exports++;
    return 0;
}

static void
PayloadBuffer_releasebuffer(PayloadBufferObject *self, Py_buffer *view)
{
    self->exports--;
}

static PyObject *
PayloadBuffer_view(PayloadBufferObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *
PayloadBuffer_unmask(PayloadBufferObject *self, PyObject *arg)
{
    Py_buffer mask;
    unsigned char *data;

    if (self->taken) {
        PyErr_SetString(PyExc_BufferError, "payload was taken");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &mask, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (mask.len != 4) {
        PyBuffer_Release(&mask);
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        return NULL;
    }
    data = (unsigned char *)PyBytes_AS_STRING(self->bytes);
    xor_mask(data, data, PyBytes_GET_SIZE(self->bytes), (const unsigned char *)mask.buf);
    PyBuffer_Release(&mask);
    Py_RETURN_NONE;
}

static PyObject *
PayloadBuffer_take(PayloadBufferObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result;

    if (self->taken) {
        PyErr_SetString(PyExc_BufferError, "payload was taken");
        return NULL;
    }
    self->taken = 1;
    if (self->exports > 0) {
        /* A view may still write to it: hand over a copy rather than a bytes object that
         * could change; the original stays alive as long as the views. */
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->bytes),
                                         PyBytes_GET_SIZE(self->bytes));
    }
    result = self->bytes;
    self->bytes = NULL;
    return result;
}

static PyMethodDef PayloadBuffer_methods[] = {
    {"view", (PyCFunction)PayloadBuffer_view, METH_NOARGS,
     "A writable memoryview of the whole payload."},
    {"unmask", (PyCFunction)PayloadBuffer_unmask, METH_O,
     "XOR the payload in place with a 4-byte mask."},
    {"take", (PyCFunction)PayloadBuffer_take, METH_NOARGS,
     "The payload as bytes; the buffer is unusable afterwards."},
    {NULL, NULL, 0, NULL},
};

static PyBufferProcs PayloadBuffer_as_buffer = {
    (getbufferproc)PayloadBuffer_getbuffer,
    (releasebufferproc)PayloadBuffer_releasebuffer,
};

static PyTypeObject PayloadBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socketeer.protocol._speedups.PayloadBuffer",
    .tp_basicsize = sizeof(PayloadBufferObject),
    .tp_dealloc = (destructor)PayloadBuffer_dealloc,
    .tp_as_buffer = &PayloadBuffer_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A payload of a given size, written in place, then taken as bytes.",
    .tp_methods = PayloadBuffer_methods,
    .tp_new = PayloadBuffer_new,
};

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_VARARGS | METH_KEYWORDS,
     "Apply a 4-byte mask to data; return the result as bytes."},
    {"read_frame", (PyCFunction)(void (*)(void))read_frame, METH_FASTCALL,
     "Read a whole, valid frame at pos in buffer: (first_byte, payload, end), or None."},
    {"read_messages", (PyCFunction)(void (*)(void))read_messages, METH_FASTCALL,
     "Append a Frame to events for each whole one-frame message from pos; return the end."},
    {"set_frame_types", (PyCFunction)(void (*)(void))set_frame_types, METH_FASTCALL,
     "Tell read_messages() the Frame class and the text and binary opcodes."},
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
    PyObject *module;

    if (PyType_Ready(&PayloadBufferType) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PayloadBufferType);
    if (PyModule_AddObject(module, "PayloadBuffer", (PyObject *)&PayloadBufferType) < 0) {
        Py_DECREF(&PayloadBufferType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
