/*
 * shm._limiter: a rate limiter shared by every process of a node.
 *
 * GCRA, the generic cell rate algorithm: each client key has one number,
 * its theoretical arrival time (TAT). A request at `now` is allowed when
 *
 *     max(TAT, now) + interval - now <= burst * interval
 *
 * and then TAT becomes max(TAT, now) + interval. This is a token bucket of
 * `burst` tokens refilled at 1/interval, expressed as one time instead of
 * a count and a timestamp, so the whole state of a key fits one 64-bit
 * word and changes with one CAS: no lock, no torn state, no drift between
 * workers (they all update the same word).
 *
 * Layout of the region (offsets from its base):
 *
 *   0   u64 bucket_count   power of two
 *   8   u64 epoch_us       wall clock at creation; times are relative to it
 *   16  u64 seed           hash seed
 *   64  u64 counters       allowed, limited, evicted (relaxed fetch-adds)
 *   128 buckets            bucket_count x 4 ways x u64, one cache line each
 *
 * A way is (tag << 44) | tat: a 20-bit tag from the key's hash (never 0)
 * and the TAT in 10 us units since epoch_us (44 bits: 5.5 years). 0 is an
 * empty way. A key's way is found by tag within its bucket; a new key takes
 * an empty way, or one whose TAT is in the past (its bucket is full again,
 * so forgetting it changes nothing), or, when all four are live, the one
 * with the oldest TAT (counted as an eviction: that client starts over
 * with a full bucket, which errs on the side of letting traffic through).
 * Two keys of one bucket with the same 20-bit tag share a budget: with
 * four ways, one pair in about 260,000 buckets.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_hash.h"

#define WAYS 4
#define HEADER_BYTES 128
#define TAG_SHIFT 44
#define TAT_MASK ((UINT64_C(1) << TAG_SHIFT) - 1)
#define UNIT_US 10
#define MAX_KEY 64
#define MAX_ATTEMPTS 32

enum { C_ALLOWED = 0, C_LIMITED, C_EVICTED, C_COUNT };

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int has_view;
    uint64_t *header;
    uint64_t *buckets;
    uint64_t bucket_mask;
    uint64_t epoch_us;
    uint64_t seed;
} LimiterCore;

/* The way holding `tag`, else the way a new key should take. */
static int
find_way(uint64_t *ways, uint64_t tag, uint64_t now, uint64_t *seen,
         int *is_new, int *evicts)
{
    int w, pick = -1;
    uint64_t oldest = UINT64_MAX;

    *is_new = 1;
    *evicts = 0;
    for (w = 0; w < WAYS; w++) {
        seen[w] = __atomic_load_n(&ways[w], __ATOMIC_ACQUIRE);
        if (seen[w] != 0 && (seen[w] >> TAG_SHIFT) == tag) {
            *is_new = 0;
            return w;
        }
    }
    for (w = 0; w < WAYS; w++) {
        uint64_t tat = seen[w] & TAT_MASK;
        if (seen[w] == 0 || tat <= now)
            return w;
        if (tat < oldest) {
            oldest = tat;
            pick = w;
        }
    }
    *evicts = 1;
    return pick;
}

static PyObject *
LimiterCore_acquire(LimiterCore *self, PyObject *args)
{
    Py_buffer key;
    unsigned long long now_us, interval_us, burst;
    uint64_t h, tag, now, interval, limit, *ways, seen[WAYS];
    int attempt, w, is_new, evicts;

    if (self->header == NULL) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed limiter");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*KKK", &key, &now_us, &interval_us, &burst))
        return NULL;
    if (key.len < 1 || key.len > MAX_KEY || interval_us < UNIT_US ||
        burst < 1 || burst > 1000000 || now_us < self->epoch_us) {
        PyBuffer_Release(&key);
        PyErr_Format(PyExc_ValueError,
                     "acquire(key of %zd bytes, now_us, interval_us=%llu, "
                     "burst=%llu): expected a 1-%d byte key, an interval of "
                     "at least %d us, a burst of 1 to 1000000 and a time "
                     "after the limiter was created",
                     key.len, interval_us, burst, MAX_KEY, UNIT_US);
        return NULL;
    }
    h = hash_key(self->seed, key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    tag = (h >> TAG_SHIFT) | 1;
    ways = self->buckets + (h & self->bucket_mask) * WAYS;
    now = (now_us - self->epoch_us) / UNIT_US;
    interval = interval_us / UNIT_US;
    limit = interval * burst;

    for (attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        uint64_t tat, next, ahead;
        w = find_way(ways, tag, now, seen, &is_new, &evicts);
        tat = is_new ? now : (seen[w] & TAT_MASK);
        if (tat < now)
            tat = now;
        next = tat + interval;
        ahead = next - now;
        if (ahead > limit) {
            __atomic_fetch_add(&self->header[8 + C_LIMITED], 1,
                               __ATOMIC_RELAXED);
            return Py_BuildValue("(OKK)", Py_False,
                                 (unsigned long long)(ahead - limit) * UNIT_US,
                                 (unsigned long long)(tat - now) * UNIT_US);
        }
        if (__atomic_compare_exchange_n(&ways[w], &seen[w],
                                        (tag << TAG_SHIFT) | (next & TAT_MASK),
                                        0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            __atomic_fetch_add(&self->header[8 + C_ALLOWED], 1,
                               __ATOMIC_RELAXED);
            if (evicts)
                __atomic_fetch_add(&self->header[8 + C_EVICTED], 1,
                                   __ATOMIC_RELAXED);
            /* remaining requests now, and microseconds until full again */
            return Py_BuildValue("(OKK)", Py_True,
                                 (unsigned long long)((limit - ahead) /
                                                      interval),
                                 (unsigned long long)ahead * UNIT_US);
        }
    }
    /* Contended beyond reason: let the request through rather than stall. */
    return Py_BuildValue("(OKK)", Py_True, 0ULL, 0ULL);
}

static PyObject *
LimiterCore_counters(LimiterCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->header == NULL) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed limiter");
        return NULL;
    }
    return Py_BuildValue(
        "(KKK)",
        (unsigned long long)__atomic_load_n(&self->header[8 + C_ALLOWED],
                                            __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&self->header[8 + C_LIMITED],
                                            __ATOMIC_RELAXED),
        (unsigned long long)__atomic_load_n(&self->header[8 + C_EVICTED],
                                            __ATOMIC_RELAXED));
}

static void
limiter_release(LimiterCore *self)
{
    if (self->has_view) {
        PyBuffer_Release(&self->view);
        self->has_view = 0;
    }
    self->header = NULL;
    self->buckets = NULL;
}

static PyObject *
LimiterCore_close(LimiterCore *self, PyObject *Py_UNUSED(ignored))
{
    limiter_release(self);
    Py_RETURN_NONE;
}

static int
LimiterCore_init(LimiterCore *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"buffer", "offset", NULL};
    PyObject *buffer;
    Py_ssize_t offset;
    uint64_t count;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On", kwlist, &buffer,
                                     &offset))
        return -1;
    limiter_release(self);
    if (PyObject_GetBuffer(buffer, &self->view, PyBUF_WRITABLE) < 0)
        return -1;
    self->has_view = 1;
    if (offset < 0 || offset % 64 != 0 ||
        offset + HEADER_BYTES > self->view.len) {
        PyErr_SetString(PyExc_ValueError, "limiter region does not fit");
        limiter_release(self);
        return -1;
    }
    self->header = (uint64_t *)((char *)self->view.buf + offset);
    count = self->header[0];
    if (count == 0 || (count & (count - 1)) != 0 ||
        offset + HEADER_BYTES + (Py_ssize_t)(count * WAYS * 8) >
            self->view.len) {
        PyErr_SetString(PyExc_ValueError,
                        "limiter region is not initialised or does not fit");
        limiter_release(self);
        return -1;
    }
    self->bucket_mask = count - 1;
    self->epoch_us = self->header[1];
    self->seed = self->header[2];
    self->buckets = (uint64_t *)((char *)self->header + HEADER_BYTES);
    return 0;
}

static void
LimiterCore_dealloc(LimiterCore *self)
{
    limiter_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef LimiterCore_methods[] = {
    {"acquire", (PyCFunction)LimiterCore_acquire, METH_VARARGS,
     "acquire(key, now_us, interval_us, burst) -> (allowed, a, b): when "
     "allowed, a = requests left and b = us until the budget is full; "
     "when refused, a = us to wait and b = us until full"},
    {"counters", (PyCFunction)LimiterCore_counters, METH_NOARGS,
     "counters() -> (allowed, limited, evicted)"},
    {"close", (PyCFunction)LimiterCore_close, METH_NOARGS,
     "release the buffer; later calls raise ValueError"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LimiterCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shm._limiter.LimiterCore",
    .tp_basicsize = sizeof(LimiterCore),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A GCRA rate limiter over a region of a shared buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)LimiterCore_init,
    .tp_dealloc = (destructor)LimiterCore_dealloc,
    .tp_methods = LimiterCore_methods,
};

static PyObject *
limiter_init_region(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long count, epoch_us, seed;
    uint64_t *header;

    if (!PyArg_ParseTuple(args, "w*nKKK", &view, &offset, &count, &epoch_us,
                          &seed))
        return NULL;
    if (offset < 0 || offset % 64 != 0 || count == 0 ||
        (count & (count - 1)) != 0 ||
        offset + HEADER_BYTES + (Py_ssize_t)(count * WAYS * 8) > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "init_region: bucket count must be a power of two "
                        "and the region must fit the buffer");
        return NULL;
    }
    header = (uint64_t *)((char *)view.buf + offset);
    header[0] = count;
    header[1] = epoch_us;
    header[2] = seed;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *
limiter_region_bytes(PyObject *Py_UNUSED(m), PyObject *arg)
{
    unsigned long long count = PyLong_AsUnsignedLongLong(arg);

    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLongLong(HEADER_BYTES + count * WAYS * 8);
}

static PyMethodDef module_methods[] = {
    {"init_region", limiter_init_region, METH_VARARGS,
     "init_region(buffer, offset, bucket_count, epoch_us, seed)"},
    {"region_bytes", limiter_region_bytes, METH_O,
     "region_bytes(bucket_count) -> bytes the region needs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef limiter_module = {
    PyModuleDef_HEAD_INIT, "shm._limiter",
    "A lock-free GCRA rate limiter in shared memory.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__limiter(void)
{
    PyObject *m;

    if (PyType_Ready(&LimiterCoreType) < 0)
        return NULL;
    m = PyModule_Create(&limiter_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "LimiterCore", (PyObject *)&LimiterCoreType) <
            0 ||
        PyModule_AddIntConstant(m, "MAX_KEY_BYTES", MAX_KEY) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
