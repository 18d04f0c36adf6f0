/*
 * hyperlinkr._wire: the per-request byte work of the redirect fast path
 * and of the click ring, in C.
 *
 * Each function here has a reference implementation in Python next to
 * the code that calls it (hyperlinkr.http1, hyperlinkr.clicks,
 * workers.aggregates) and answers for the common case only: when it meets
 * anything it is not sure of, it says so (None, True, or where it stopped:
 * see each function), and the caller runs the reference, which then
 * decides, raises or explains. So the Python stays the one definition of
 * what is accepted, and tests/hyperlinkr/test_wire.py holds the two to
 * the same answers over generated inputs.
 *
 * Why C: at 50k redirects/s a microsecond per request is 5% of a core.
 * The regular expressions of http1.parse_plain cost 1.7 us for a bare
 * wrk head and 4.9 us for a browser's eight headers; the struct packing
 * and joins of clicks.encode_click 0.7 us; in the analytics actor,
 * clicks.read_click 0.8 us and ClickAggregator.add_fields 0.9 us more.
 * Here they cost a fraction of that. A general HTTP parser (httptools)
 * was rejected: it calls back into Python for every header, which is
 * what costs the time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <structmember.h>

#include <stdint.h>
#include <string.h>

/* ---- scan_plain ------------------------------------------------------ */

/* Byte classes of http1's regular expressions. */
static unsigned char code_chars[256];  /* [A-Za-z0-9_-] */
static unsigned char query_chars[256]; /* [A-Za-z0-9._~!$&'()*+,;=:@/?-] */
static unsigned char token_chars[256]; /* RFC 9110 tchar */
static unsigned char hex_chars[256];
/* What str.lstrip() strips among bytes a header value can hold. */
static unsigned char strip_chars[256];

static void
init_classes(void)
{
    const char *query = "._~!$&'()*+,;=:@/?-";
    const char *token = "!#$%&'*+.^_`|~-";
    const char *space = "\t\x0b\x0c\x1c\x1d\x1e\x1f ";
    int c;

    for (c = 0; c < 256; c++) {
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9');
        code_chars[c] = alnum || c == '_' || c == '-';
        query_chars[c] = alnum;
        token_chars[c] = alnum;
        hex_chars[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                       (c >= 'A' && c <= 'F');
    }
    for (; *query; query++)
        query_chars[(unsigned char)*query] = 1;
    for (; *token; token++)
        token_chars[(unsigned char)*token] = 1;
    for (; *space; space++)
        strip_chars[(unsigned char)*space] = 1;
}

/* The headers a redirect reads or that make a request not plain. */
enum notable {
    H_OTHER,
    H_REFERER,
    H_USER_AGENT,
    H_FORWARDED_FOR,
    H_CONNECTION,
    H_REFUSED, /* content-length, transfer-encoding, expect, upgrade */
};

static int
name_is(const unsigned char *name, Py_ssize_t size, const char *lower)
{
    Py_ssize_t i;

    if ((Py_ssize_t)strlen(lower) != size)
        return 0;
    for (i = 0; i < size; i++) {
        unsigned char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

static enum notable
classify(const unsigned char *name, Py_ssize_t size)
{
    switch (size) {
    case 6:
        return name_is(name, size, "expect") ? H_REFUSED : H_OTHER;
    case 7:
        if (name_is(name, size, "referer"))
            return H_REFERER;
        return name_is(name, size, "upgrade") ? H_REFUSED : H_OTHER;
    case 10:
        if (name_is(name, size, "user-agent"))
            return H_USER_AGENT;
        return name_is(name, size, "connection") ? H_CONNECTION : H_OTHER;
    case 14:
        return name_is(name, size, "content-length") ? H_REFUSED : H_OTHER;
    case 15:
        return name_is(name, size, "x-forwarded-for") ? H_FORWARDED_FOR
                                                       : H_OTHER;
    case 17:
        return name_is(name, size, "transfer-encoding") ? H_REFUSED : H_OTHER;
    default:
        return H_OTHER;
    }
}

typedef struct {
    const unsigned char *start; /* NULL: the header was not there */
    Py_ssize_t size;
} span;

/* 1 if the value has a byte the reference would decode beyond ASCII. */
static int
not_ascii(span value)
{
    Py_ssize_t i;

    for (i = 0; i < value.size; i++)
        if (value.start[i] >= 0x80)
            return 1;
    return 0;
}

static span
lstripped(span value)
{
    while (value.size > 0 && strip_chars[*value.start]) {
        value.start++;
        value.size--;
    }
    return value;
}

static PyObject *
value_text(span value)
{
    if (value.start == NULL)
        Py_RETURN_NONE;
    value = lstripped(value);
    return PyUnicode_DecodeASCII((const char *)value.start, value.size, NULL);
}

/*
 * scan_plain(data, start, code_max, cls) -> cls(...) | None | True
 *
 * http1.parse_plain for the head at data[start]: None when it is not a
 * complete plain head, True when it is one but a header value the
 * redirect reads holds a byte above 0x7f (its decoding, stripping and
 * case folding are Unicode's: the reference does them), else an instance
 * of the tuple subclass `cls` with PlainRequest's fields.
 */
static PyObject *
wire_scan_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const unsigned char *p;
    Py_ssize_t n, pos, code_start, code_size, end;
    Py_ssize_t code_max;
    PyTypeObject *cls;
    int head_only, has_query = 0, keep_alive = 1;
    span referer = {NULL, 0}, agent = {NULL, 0}, forwarded = {NULL, 0};
    span connection = {NULL, 0};
    PyObject *result = NULL, *items[8] = {NULL};
    int i;

    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "scan_plain(data, start, code_max, cls)");
        return NULL;
    }
    if (!PyType_Check(args[3]) ||
        !PyType_IsSubtype((PyTypeObject *)args[3], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple subclass");
        return NULL;
    }
    cls = (PyTypeObject *)args[3];
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    code_max = PyLong_AsSsize_t(args[2]);
    if (code_max == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    p = view.buf;
    n = view.len;
    if (pos < 0)
        pos = 0; /* as re's match(data, pos) takes it */
    if (pos > n)
        goto not_plain;

    /* Request line: (GET|HEAD) /<code>[?<query>] HTTP/1.1 CRLF */
    if (n - pos >= 5 && memcmp(p + pos, "GET /", 5) == 0) {
        head_only = 0;
        pos += 5;
    } else if (n - pos >= 6 && memcmp(p + pos, "HEAD /", 6) == 0) {
        head_only = 1;
        pos += 6;
    } else {
        goto not_plain;
    }
    code_start = pos;
    while (pos < n && code_chars[p[pos]])
        pos++;
    code_size = pos - code_start;
    if (code_size < 1 || code_size > code_max)
        goto not_plain;
    if (pos < n && p[pos] == '?') {
        has_query = 1;
        pos++;
        for (;;) {
            if (pos < n && query_chars[p[pos]]) {
                pos++;
            } else if (pos + 2 < n && p[pos] == '%' && hex_chars[p[pos + 1]] &&
                       hex_chars[p[pos + 2]]) {
                pos += 3;
            } else {
                break;
            }
        }
    }
    if (n - pos < 11 || memcmp(p + pos, " HTTP/1.1\r\n", 11) != 0)
        goto not_plain;
    pos += 11;

    /* (<token>:<value without CR or LF> CRLF)* CRLF */
    for (;;) {
        Py_ssize_t name_start, value_start;
        span value;

        if (n - pos >= 2 && p[pos] == '\r' && p[pos + 1] == '\n') {
            end = pos + 2;
            break;
        }
        name_start = pos;
        while (pos < n && token_chars[p[pos]])
            pos++;
        if (pos == name_start || pos >= n || p[pos] != ':')
            goto not_plain;
        value_start = ++pos;
        while (pos < n && p[pos] != '\r' && p[pos] != '\n')
            pos++;
        if (n - pos < 2 || p[pos] != '\r' || p[pos + 1] != '\n')
            goto not_plain;
        value.start = p + value_start;
        value.size = pos - value_start;
        pos += 2;
        switch (classify(p + name_start, value_start - 1 - name_start)) {
        case H_REFERER:
            if (referer.start == NULL)
                referer = value;
            break;
        case H_USER_AGENT:
            if (agent.start == NULL)
                agent = value;
            break;
        case H_FORWARDED_FOR:
            if (forwarded.start == NULL)
                forwarded = value;
            break;
        case H_CONNECTION:
            connection = value; /* the last one decides */
            break;
        case H_REFUSED:
            goto not_plain;
        case H_OTHER:
            break;
        }
    }

    if (not_ascii(referer) || not_ascii(agent) || not_ascii(forwarded) ||
        not_ascii(connection)) {
        PyBuffer_Release(&view);
        Py_RETURN_TRUE;
    }
    if (connection.start != NULL) {
        span word = lstripped(connection);
        keep_alive = name_is(word.start, word.size, "keep-alive");
    }

    items[0] = PyLong_FromSsize_t(end);
    items[1] = PyBytes_FromStringAndSize((const char *)p + code_start,
                                         code_size);
    items[2] = Py_NewRef(has_query ? Py_True : Py_False);
    items[3] = Py_NewRef(head_only ? Py_True : Py_False);
    items[4] = Py_NewRef(keep_alive ? Py_True : Py_False);
    items[5] = value_text(referer);
    items[6] = value_text(agent);
    items[7] = value_text(forwarded);
    PyBuffer_Release(&view);
    for (i = 0; i < 8; i++)
        if (items[i] == NULL)
            goto fail;
    result = cls->tp_alloc(cls, 8);
    if (result == NULL)
        goto fail;
    for (i = 0; i < 8; i++)
        PyTuple_SET_ITEM(result, i, items[i]);
    return result;

fail:
    for (i = 0; i < 8; i++)
        Py_XDECREF(items[i]);
    return NULL;

not_plain:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* ---- click records --------------------------------------------------- */

/* Must match hyperlinkr/clicks.py. */
#define CLICK_VERSION 1
#define HEADER_BYTES 14
#define VISITOR_BYTES 8
#define HAS_REFERRER 0x01
#define HAS_USER_AGENT 0x02
#define HAS_VISITOR 0x04
#define KNOWN_FLAGS (HAS_REFERRER | HAS_USER_AGENT | HAS_VISITOR)
#define REFERRER_MAX 200
#define USER_AGENT_MAX 240

/* A str as the UTF-8 bytes clicks.encode_click makes of it. */
typedef struct {
    const char *data;
    Py_ssize_t size;
    PyObject *owner; /* a bytes object holding data, or NULL */
} utf8;

/* 0, or -1 with no exception set when the reference should do it. */
static int
as_utf8(PyObject *text, const char *errors, utf8 *out)
{
    out->owner = NULL;
    if (!PyUnicode_Check(text))
        return -1;
    if (PyUnicode_IS_ASCII(text)) {
        out->data = (const char *)PyUnicode_DATA(text);
        out->size = PyUnicode_GET_LENGTH(text);
        return 0;
    }
    out->owner = PyUnicode_AsEncodedString(text, "utf-8", errors);
    if (out->owner == NULL) {
        PyErr_Clear();
        return -1;
    }
    out->data = PyBytes_AS_STRING(out->owner);
    out->size = PyBytes_GET_SIZE(out->owner);
    return 0;
}

/* clicks._truncate_utf8: at most `limit` bytes, on a character boundary. */
static Py_ssize_t
truncated(const char *data, Py_ssize_t size, Py_ssize_t limit)
{
    Py_ssize_t end;

    if (limit < 0)
        limit = 0;
    if (size <= limit)
        return size;
    end = limit;
    while (end > 0 && ((unsigned char)data[end] & 0xC0) == 0x80)
        end--;
    return end;
}

static void
put_u64(char *at, unsigned long long value)
{
    int i;

    for (i = 0; i < 8; i++)
        at[i] = (char)((value >> (8 * i)) & 0xFF);
}

/*
 * encode_click(code, ts_ms, referrer, user_agent, record_bytes, visitor)
 *     -> bytes | None
 *
 * clicks.encode_click, or None where the reference would raise or where
 * an argument is not of the common kind (it then decides).
 */
static PyObject *
wire_encode_click(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    utf8 code = {0}, referrer = {0}, agent = {0};
    unsigned long long ts_ms, visitor = 0;
    Py_ssize_t record_bytes, room, referrer_size = 0, agent_size = 0, size;
    int flags = 0;
    PyObject *record = NULL;
    char *out;

    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_click(code, ts_ms, referrer, user_agent, "
                        "record_bytes, visitor)");
        return NULL;
    }
    if (!PyLong_Check(args[1]) || !PyLong_Check(args[4]))
        Py_RETURN_NONE;
    ts_ms = PyLong_AsUnsignedLongLong(args[1]);
    if (ts_ms == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    record_bytes = PyLong_AsSsize_t(args[4]);
    if (record_bytes == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (args[5] != Py_None) {
        if (!PyLong_Check(args[5]))
            Py_RETURN_NONE;
        visitor = PyLong_AsUnsignedLongLongMask(args[5]);
        if (visitor == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        flags |= HAS_VISITOR;
    }
    if (as_utf8(args[0], "strict", &code) < 0)
        goto reference;
    room = record_bytes - HEADER_BYTES - code.size;
    if (code.size > 0xFF || room < 0)
        goto reference;
    if (flags & HAS_VISITOR)
        room -= VISITOR_BYTES;
    if (args[2] != Py_None) {
        if (as_utf8(args[2], "replace", &referrer) < 0)
            goto reference;
        flags |= HAS_REFERRER;
        referrer_size = truncated(referrer.data, referrer.size,
                                  room < REFERRER_MAX ? room : REFERRER_MAX);
        room -= referrer_size;
    }
    if (args[3] != Py_None) {
        if (as_utf8(args[3], "replace", &agent) < 0)
            goto reference;
        flags |= HAS_USER_AGENT;
        agent_size = truncated(agent.data, agent.size,
                               room < USER_AGENT_MAX ? room : USER_AGENT_MAX);
    }

    size = HEADER_BYTES + ((flags & HAS_VISITOR) ? VISITOR_BYTES : 0) +
           code.size + referrer_size + agent_size;
    record = PyBytes_FromStringAndSize(NULL, size);
    if (record == NULL)
        goto done;
    out = PyBytes_AS_STRING(record);
    out[0] = CLICK_VERSION;
    put_u64(out + 1, ts_ms);
    out[9] = (char)flags;
    out[10] = (char)code.size;
    out[11] = (char)referrer_size;
    out[12] = (char)(agent_size & 0xFF);
    out[13] = (char)(agent_size >> 8);
    out += HEADER_BYTES;
    if (flags & HAS_VISITOR) {
        put_u64(out, visitor);
        out += VISITOR_BYTES;
    }
    memcpy(out, code.data, code.size);
    out += code.size;
    if (referrer_size)
        memcpy(out, referrer.data, referrer_size);
    out += referrer_size;
    if (agent_size)
        memcpy(out, agent.data, agent_size);
    goto done;

reference:
    record = Py_NewRef(Py_None);
done:
    Py_XDECREF(code.owner);
    Py_XDECREF(referrer.owner);
    Py_XDECREF(agent.owner);
    return record;
}

static unsigned long long
get_u64(const unsigned char *at)
{
    unsigned long long value = 0;
    int i;

    for (i = 7; i >= 0; i--)
        value = (value << 8) | at[i];
    return value;
}

/*
 * Clicks repeat a few codes, referrers and user agents many times, so the
 * text of a field is looked up in a small cache of ASCII strings before it
 * is decoded: a hit costs a compare instead of a new string, and the
 * string's hash, computed once, serves every dict it is counted in. A slot
 * is picked from the length and three 8-byte words of the field; a miss
 * replaces what the slot held. Only ASCII strings are kept, whose bytes are
 * their UTF-8, so a byte compare says the field decodes to that string.
 */
#define TEXT_CACHE_SLOTS 1024
static PyObject *text_cache[TEXT_CACHE_SLOTS];

static Py_ssize_t
text_slot(const unsigned char *data, Py_ssize_t size)
{
    uint64_t first = 0, middle = 0, last = 0, h;

    if (size >= 8) {
        memcpy(&first, data, 8);
        memcpy(&middle, data + (size - 8) / 2, 8);
        memcpy(&last, data + size - 8, 8);
    } else if (size > 0) {
        memcpy(&first, data, (size_t)size);
    }
    h = (uint64_t)size * 0x9E3779B97F4A7C15ULL;
    h = (h ^ first) * 0xFF51AFD7ED558CCDULL;
    h = (h ^ middle) * 0xC4CEB9FE1A85EC53ULL;
    h = (h ^ last) * 0x9E3779B97F4A7C15ULL;
    return (Py_ssize_t)(h >> 54) & (TEXT_CACHE_SLOTS - 1);
}

/* A UTF-8 field of a record as str; NULL with no exception if invalid. */
static PyObject *
field_text(const unsigned char *data, Py_ssize_t size)
{
    Py_ssize_t slot = text_slot(data, size);
    PyObject *cached = text_cache[slot], *text;

    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == size &&
        memcmp(PyUnicode_DATA(cached), data, (size_t)size) == 0)
        return Py_NewRef(cached);
    text = PyUnicode_DecodeUTF8((const char *)data, size, NULL);
    if (text == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            PyErr_Clear();
        return NULL;
    }
    if (PyUnicode_IS_COMPACT_ASCII(text))
        Py_XSETREF(text_cache[slot], Py_NewRef(text));
    return text;
}

/* A record's fields, decoded; the objects are new references. */
typedef struct {
    PyObject *code, *referrer, *agent; /* referrer, agent: Py_None if absent */
    unsigned long long ts_ms;
    int has_visitor;
    unsigned long long visitor;
} click_fields;

static void
clear_fields(click_fields *fields)
{
    Py_CLEAR(fields->code);
    Py_CLEAR(fields->referrer);
    Py_CLEAR(fields->agent);
}

/*
 * clicks.read_click's checks and reading: 0 with `fields` filled, 1 for a
 * record it would refuse (or that is not bytes), -1 with an exception set.
 */
static int
parse_record(PyObject *record, click_fields *fields)
{
    const unsigned char *p;
    Py_ssize_t size, start, code_end, referrer_end, end, i;
    int flags, code_size, referrer_size, agent_size;

    memset(fields, 0, sizeof(*fields));
    if (!PyBytes_Check(record))
        return 1;
    p = (const unsigned char *)PyBytes_AS_STRING(record);
    size = PyBytes_GET_SIZE(record);
    if (size < HEADER_BYTES)
        return 1;
    flags = p[9];
    code_size = p[10];
    referrer_size = p[11];
    agent_size = p[12] | (p[13] << 8);
    if (p[0] != CLICK_VERSION || (flags & ~KNOWN_FLAGS) || code_size == 0 ||
        referrer_size > ((flags & HAS_REFERRER) ? REFERRER_MAX : 0) ||
        agent_size > ((flags & HAS_USER_AGENT) ? USER_AGENT_MAX : 0))
        return 1;
    start = HEADER_BYTES;
    if (flags & HAS_VISITOR) {
        if (size < HEADER_BYTES + VISITOR_BYTES)
            return 1;
        start += VISITOR_BYTES;
    }
    code_end = start + code_size;
    referrer_end = code_end + referrer_size;
    end = referrer_end + agent_size;
    if (size < end)
        return 1;
    for (i = end; i < size; i++)
        if (p[i] != 0)
            return 1;

    fields->ts_ms = get_u64(p + 1);
    fields->has_visitor = (flags & HAS_VISITOR) != 0;
    if (fields->has_visitor)
        fields->visitor = get_u64(p + HEADER_BYTES);
    fields->code = field_text(p + start, code_size);
    if (fields->code == NULL)
        goto invalid;
    if (flags & HAS_REFERRER) {
        fields->referrer = field_text(p + code_end, referrer_size);
        if (fields->referrer == NULL)
            goto invalid;
    } else {
        fields->referrer = Py_NewRef(Py_None);
    }
    if (flags & HAS_USER_AGENT) {
        fields->agent = field_text(p + referrer_end, agent_size);
        if (fields->agent == NULL)
            goto invalid;
    } else {
        fields->agent = Py_NewRef(Py_None);
    }
    return 0;

invalid:
    clear_fields(fields);
    return PyErr_Occurred() ? -1 : 1;
}

/* ---- tallies ---------------------------------------------------------- */

/* Must match workers/aggregates.py. */
#define DAY_MS 86400000LL
#define LAST_TS_MS 253402300799999ULL /* 9999-12-31T23:59:59.999Z */

/* workers.aggregates' per-link tally of the clicks since the last flush. */
typedef struct {
    PyObject_HEAD
    long long first_ts_ms;
    long long last_ts_ms;
    long long total;
    PyObject *days;      /* {day number: clicks} */
    PyObject *referrers; /* {referrer or None: clicks} */
    PyObject *agents;    /* {user agent or None: clicks} */
    PyObject *recent;    /* [(ts_ms, referrer, user agent)] */
    PyObject *visitors;  /* {day number: {visitor hash}} */
} Tally;

static PyTypeObject TallyType;

static PyObject *
tally_make(PyTypeObject *type, long long first_ts_ms, long long last_ts_ms)
{
    Tally *self = (Tally *)type->tp_alloc(type, 0);

    if (self == NULL)
        return NULL;
    self->first_ts_ms = first_ts_ms;
    self->last_ts_ms = last_ts_ms;
    self->total = 0;
    self->days = PyDict_New();
    self->referrers = PyDict_New();
    self->agents = PyDict_New();
    self->recent = PyList_New(0);
    self->visitors = PyDict_New();
    if (self->days == NULL || self->referrers == NULL || self->agents == NULL ||
        self->recent == NULL || self->visitors == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *
Tally_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"first_ts_ms", "last_ts_ms", NULL};
    long long first_ts_ms, last_ts_ms;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LL", keywords, &first_ts_ms,
                                     &last_ts_ms))
        return NULL;
    return tally_make(type, first_ts_ms, last_ts_ms);
}

static int
Tally_traverse(Tally *self, visitproc visit, void *arg)
{
    Py_VISIT(self->days);
    Py_VISIT(self->referrers);
    Py_VISIT(self->agents);
    Py_VISIT(self->recent);
    Py_VISIT(self->visitors);
    return 0;
}

static int
Tally_clear(Tally *self)
{
    Py_CLEAR(self->days);
    Py_CLEAR(self->referrers);
    Py_CLEAR(self->agents);
    Py_CLEAR(self->recent);
    Py_CLEAR(self->visitors);
    return 0;
}

static void
Tally_dealloc(Tally *self)
{
    PyObject_GC_UnTrack(self);
    Tally_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Tally_members[] = {
    {"first_ts_ms", T_LONGLONG, offsetof(Tally, first_ts_ms), 0, NULL},
    {"last_ts_ms", T_LONGLONG, offsetof(Tally, last_ts_ms), 0, NULL},
    {"total", T_LONGLONG, offsetof(Tally, total), 0, NULL},
    {"days", T_OBJECT_EX, offsetof(Tally, days), READONLY, NULL},
    {"referrers", T_OBJECT_EX, offsetof(Tally, referrers), READONLY, NULL},
    {"agents", T_OBJECT_EX, offsetof(Tally, agents), READONLY, NULL},
    {"recent", T_OBJECT_EX, offsetof(Tally, recent), READONLY, NULL},
    {"visitors", T_OBJECT_EX, offsetof(Tally, visitors), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "hyperlinkr._wire.Tally",
    .tp_doc = "Tally(first_ts_ms, last_ts_ms): one link's clicks since a flush",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Tally_new,
    .tp_traverse = (traverseproc)Tally_traverse,
    .tp_clear = (inquiry)Tally_clear,
    .tp_dealloc = (destructor)Tally_dealloc,
    .tp_members = Tally_members,
};

/* counts[key] = counts.get(key, 0) + 1 */
static int
bump(PyObject *counts, PyObject *key)
{
    PyObject *old = PyDict_GetItemWithError(counts, key), *new;
    long long count = 0;
    int result;

    if (old == NULL && PyErr_Occurred())
        return -1;
    if (old != NULL) {
        count = PyLong_AsLongLong(old);
        if (count == -1 && PyErr_Occurred())
            return -1;
    }
    new = PyLong_FromLongLong(count + 1);
    if (new == NULL)
        return -1;
    result = PyDict_SetItem(counts, key, new);
    Py_DECREF(new);
    return result;
}

/* ClickAggregator.add_fields for one click whose fields were read. */
static int
tally_one(PyObject *tallies, click_fields *fields, Py_ssize_t recent_held,
          PyObject *cut)
{
    long long ts_ms = (long long)fields->ts_ms;
    PyObject *found, *day = NULL, *ts = NULL, *row;
    Tally *tally;
    int result = -1;

    found = PyDict_GetItemWithError(tallies, fields->code);
    if (found == NULL) {
        if (PyErr_Occurred())
            return -1;
        found = tally_make(&TallyType, ts_ms, ts_ms);
        if (found == NULL)
            return -1;
        if (PyDict_SetItem(tallies, fields->code, found) < 0) {
            Py_DECREF(found);
            return -1;
        }
        Py_DECREF(found); /* the dict holds it */
    } else if (!PyObject_TypeCheck(found, &TallyType)) {
        PyErr_SetString(PyExc_TypeError, "tallies must hold Tally values");
        return -1;
    }
    tally = (Tally *)found;
    tally->total++;
    if (ts_ms < tally->first_ts_ms)
        tally->first_ts_ms = ts_ms;
    else if (ts_ms > tally->last_ts_ms)
        tally->last_ts_ms = ts_ms;
    day = PyLong_FromLongLong(ts_ms / DAY_MS);
    if (day == NULL || bump(tally->days, day) < 0 ||
        bump(tally->referrers, fields->referrer) < 0 ||
        bump(tally->agents, fields->agent) < 0)
        goto done;
    if (fields->has_visitor) {
        PyObject *seen = PyDict_GetItemWithError(tally->visitors, day);
        PyObject *visitor;
        int added;

        if (seen == NULL) {
            if (PyErr_Occurred())
                goto done;
            seen = PySet_New(NULL);
            if (seen == NULL)
                goto done;
            if (PyDict_SetItem(tally->visitors, day, seen) < 0) {
                Py_DECREF(seen);
                goto done;
            }
            Py_DECREF(seen); /* the dict holds it */
        }
        visitor = PyLong_FromUnsignedLongLong(fields->visitor);
        if (visitor == NULL)
            goto done;
        added = PySet_Add(seen, visitor);
        Py_DECREF(visitor);
        if (added < 0)
            goto done;
    }
    if (recent_held > 0) {
        ts = PyLong_FromLongLong(ts_ms);
        if (ts == NULL)
            goto done;
        row = PyTuple_Pack(3, ts, fields->referrer, fields->agent);
        if (row == NULL || PyList_Append(tally->recent, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
        if (PyList_GET_SIZE(tally->recent) > recent_held) {
            PyObject *kept = PyObject_CallFunction(cut, "On", tally->recent,
                                                   recent_held / 2);
            if (kept == NULL)
                goto done;
            Py_DECREF(kept);
        }
    }
    result = 0;
done:
    Py_XDECREF(day);
    Py_XDECREF(ts);
    return result;
}

/*
 * tally_clicks(records, start, tallies, recent_held, cut) -> int
 *
 * ClickAggregator.add_fields(*read_click(record)) for records[start:],
 * in order, up to the first record either would refuse (or that is not
 * bytes): returns its index, len(records) if there is none. `cut(recent,
 * limit)` is aggregates._keep_newest, called as add_fields calls it.
 */
static PyObject *
wire_tally_clicks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *records, *tallies, *cut;
    Py_ssize_t start, recent_held, i;

    (void)module;
    if (nargs != 5 || !PyList_Check(args[0]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "tally_clicks(records: list, start, tallies: dict, "
                        "recent_held, cut)");
        return NULL;
    }
    records = args[0];
    tallies = args[2];
    cut = args[4];
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    recent_held = PyLong_AsSsize_t(args[3]);
    if (recent_held == -1 && PyErr_Occurred())
        return NULL;
    /* The size is read each time: `cut` is Python, and could change it. */
    for (i = start < 0 ? 0 : start; i < PyList_GET_SIZE(records); i++) {
        click_fields fields;
        int found = parse_record(PyList_GET_ITEM(records, i), &fields);

        if (found < 0)
            return NULL;
        if (found > 0)
            break;
        if (fields.ts_ms > LAST_TS_MS) {
            clear_fields(&fields);
            break;
        }
        found = tally_one(tallies, &fields, recent_held, cut);
        clear_fields(&fields);
        if (found < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef wire_methods[] = {
    {"scan_plain", (PyCFunction)(void (*)(void))wire_scan_plain,
     METH_FASTCALL, "scan_plain(data, start, code_max, cls)"},
    {"encode_click", (PyCFunction)(void (*)(void))wire_encode_click,
     METH_FASTCALL,
     "encode_click(code, ts_ms, referrer, user_agent, record_bytes, visitor)"},
    {"tally_clicks", (PyCFunction)(void (*)(void))wire_tally_clicks,
     METH_FASTCALL, "tally_clicks(records, start, tallies, recent_held, cut)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "hyperlinkr._wire",
    "Request heads and click records, the common case in C.", -1,
    wire_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    PyObject *module;

    init_classes();
    if (PyType_Ready(&TallyType) < 0)
        return NULL;
    module = PyModule_Create(&wire_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Tally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
