/* Compiled steps of the Assign hot path; `fastpath.py` holds the Python reference of each and
 * picks this module when it was built (`make setup`). Tests hold the two equal.
 *
 * decode_request(body) -> (unit_id, attributes, experiment_keys, skip_exposure_logging, None)
 *     An `AssignRequest` decoded straight into Python values, with protobuf's rules: last value
 *     wins for singular fields, repeated fields append, embedded messages merge, unknown fields
 *     are skipped, strings must be UTF-8. Struct values become what `attributes_to_dict` gives
 *     (integral numbers below 2**53 as int). Raises ValueError on malformed input, and
 *     RequestLimitError(field, description) (a ValueError) on a well-formed request whose
 *     attributes exceed MAX_ATTRIBUTES_BYTES on the wire or nest deeper than
 *     MAX_ATTRIBUTES_DEPTH (the limits `fastpath.py` defines and checks these against).
 *     The options (forced_variations, explain, min_config_version: fields 5 to 7) are not read
 *     here: meeting one raises ValueError and the Python reference decodes the request (it
 *     returns them as the 5th item, None when unset; this decoder always returns None there).
 * encode(results, tables, in_reasons, out_reasons, tail) -> bytes | None
 *     Joins the prebuilt `AssignResponse` entry of each result (see snapshot.py) and `tail`;
 *     None when a result has no prebuilt entry (the caller encodes it the slow way).
 * unrecorded(results, unit_id, recent, exposed) -> list
 *     The results whose reason is in `exposed`, with a variant, other than the variant
 *     `recent[unit_id]` (experiment key -> variant key) holds for their experiment.
 *
 * Results are `Assignment` tuples read by position (ASSIGNMENT_FIELDS names the positions read;
 * fastpath.py checks them against the NamedTuple at import). Any argument of the wrong shape
 * raises TypeError or ValueError; nothing is read out of bounds. Objects borrowed from the
 * arguments are owned while Python code (a key's __eq__) may run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 100 /* JSON levels: protobuf's own limit refuses less deep messages */
#define MAX_ATTRIBUTES_BYTES (16 * 1024)
#define MAX_ATTRIBUTES_DEPTH 8
#define DECODED_LENGTH 5 /* items of decode_request's tuple, checked by fastpath.py */
#define FIRST_OPTION_FIELD 5 /* forced_variations, explain, min_config_version: the reference's */
#define LAST_OPTION_FIELD 7

static PyObject *RequestLimitError;

static void limit_error(const char *field, PyObject *description) {
    if (!description) return;
    PyObject *args = Py_BuildValue("(sO)", field, description);
    Py_DECREF(description);
    if (args) {
        PyErr_SetObject(RequestLimitError, args);
        Py_DECREF(args);
    }
}

typedef struct {
    const unsigned char *p, *end;
} Reader;

static int fail(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed AssignRequest: %s", what);
    return -1;
}

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return fail("truncated varint");
        unsigned char byte = *r->p++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
    }
    return fail("varint too long");
}

static int read_bytes(Reader *r, Reader *out) {
    uint64_t length;
    if (read_varint(r, &length) < 0) return -1;
    if (length > (uint64_t)(r->end - r->p)) return fail("truncated length-delimited field");
    out->p = r->p;
    out->end = r->p + length;
    r->p += length;
    return 0;
}

static int read_tag(Reader *r, uint32_t *field, uint32_t *wire_type);

/* Skips a group's fields up to its end tag (unknown groups are skipped, as upb does). */
static int skip_group(Reader *r, uint32_t number, int depth);

static int skip_field_at(Reader *r, uint32_t field, uint32_t wire_type, int depth) {
    uint64_t ignored;
    Reader inner;
    switch (wire_type) {
    case 0:
        return read_varint(r, &ignored);
    case 1:
        if (r->end - r->p < 8) return fail("truncated fixed64");
        r->p += 8;
        return 0;
    case 2:
        return read_bytes(r, &inner);
    case 3:
        return skip_group(r, field, depth + 1);
    case 5:
        if (r->end - r->p < 4) return fail("truncated fixed32");
        r->p += 4;
        return 0;
    default:
        return fail("unexpected end-group tag or wire type");
    }
}

static int skip_group(Reader *r, uint32_t number, int depth) {
    if (depth > MAX_DEPTH) return fail("nesting too deep");
    for (;;) {
        uint32_t field, wire;
        if (r->p >= r->end) return fail("unterminated group");
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (wire == 4) return field == number ? 0 : fail("mismatched end-group tag");
        if (skip_field_at(r, field, wire, depth) < 0) return -1;
    }
}

static int read_tag(Reader *r, uint32_t *field, uint32_t *wire_type) {
    uint32_t tag = 0; /* as upb: at most 5 bytes, and within 32 bits */
    for (int i = 0;; i++) {
        if (r->p >= r->end) return fail("truncated tag");
        unsigned char byte = *r->p++;
        if (i == 4 && byte > 0x0F) return fail("tag longer than 32 bits");
        tag |= (uint32_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) break;
    }
    *field = tag >> 3;
    *wire_type = tag & 7;
    if (*field == 0) return fail("field number 0");
    return 0;
}

static PyObject *utf8(Reader *r) {
    PyObject *s = PyUnicode_DecodeUTF8((const char *)r->p, r->end - r->p, NULL);
    if (!s && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        fail("string field is not valid UTF-8");
    }
    return s;
}

static int merge_struct(Reader *r, PyObject *dict, int depth, int *deepest);
static int merge_list(Reader *r, PyObject *list, int depth, int *deepest);

/* A google.protobuf.Value as a Python value; `current` is what an earlier occurrence of the
 * same Value gave (merged into when both are a struct or a list), NULL when none. `depth` is
 * the JSON level of the struct or list holding it; `*deepest` the deepest level met so far. */
static PyObject *read_value(Reader *r, PyObject *current, int depth, int *deepest) {
    if (depth > MAX_DEPTH) {
        fail("nesting too deep");
        return NULL;
    }
    PyObject *value = current ? Py_NewRef(current) : Py_NewRef(Py_None);
    while (r->p < r->end) {
        uint32_t field, wire;
        Reader inner;
        if (read_tag(r, &field, &wire) < 0) goto error;
        PyObject *next = NULL;
        if (field == 1 && wire == 0) { /* null_value */
            uint64_t ignored;
            if (read_varint(r, &ignored) < 0) goto error;
            next = Py_NewRef(Py_None);
        } else if (field == 2 && wire == 1) { /* number_value */
            double number;
            if (r->end - r->p < 8) {
                fail("truncated double");
                goto error;
            }
            memcpy(&number, r->p, 8);
            r->p += 8;
            if (isfinite(number) && number == floor(number) && fabs(number) < 9007199254740992.0)
                next = PyLong_FromDouble(number);
            else
                next = PyFloat_FromDouble(number);
        } else if (field == 3 && wire == 2) { /* string_value */
            if (read_bytes(r, &inner) < 0) goto error;
            next = utf8(&inner);
        } else if (field == 4 && wire == 0) { /* bool_value */
            uint64_t flag;
            if (read_varint(r, &flag) < 0) goto error;
            next = PyBool_FromLong(flag != 0);
        } else if (field == 5 && wire == 2) { /* struct_value */
            if (read_bytes(r, &inner) < 0) goto error;
            next = PyDict_CheckExact(value) ? Py_NewRef(value) : PyDict_New();
            if (next && merge_struct(&inner, next, depth + 1, deepest) < 0) Py_CLEAR(next);
        } else if (field == 6 && wire == 2) { /* list_value */
            if (read_bytes(r, &inner) < 0) goto error;
            next = PyList_CheckExact(value) ? Py_NewRef(value) : PyList_New(0);
            if (next && merge_list(&inner, next, depth + 1, deepest) < 0) Py_CLEAR(next);
        } else {
            if (skip_field_at(r, field, wire, 0) < 0) goto error;
            continue;
        }
        if (!next) goto error;
        Py_SETREF(value, next);
    }
    return value;
error:
    Py_DECREF(value);
    return NULL;
}

/* One map entry of a Struct's `fields` (key = 1, value = 2) into `dict`. */
static int merge_entry(Reader *r, PyObject *dict, int depth, int *deepest) {
    const unsigned char *key_p = (const unsigned char *)"";
    Py_ssize_t key_n = 0;
    PyObject *value = NULL; /* a repeated value field merges into the earlier one */
    int unknown = 0;
    while (r->p < r->end) {
        uint32_t field, wire;
        Reader inner;
        if (read_tag(r, &field, &wire) < 0) goto error;
        if (field == 1 && wire == 2) {
            if (read_bytes(r, &inner) < 0) goto error;
            key_p = inner.p;
            key_n = inner.end - inner.p;
        } else if (field == 2 && wire == 2) {
            if (read_bytes(r, &inner) < 0) goto error;
            PyObject *next = read_value(&inner, value, depth, deepest);
            if (!next) goto error;
            Py_XSETREF(value, next);
        } else if (skip_field_at(r, field, wire, 0) < 0) {
            goto error;
        } else {
            unknown = 1;
        }
    }
    Reader key_r = {key_p, key_p + key_n};
    PyObject *key = utf8(&key_r);
    if (!key) goto error;
    /* as upb: an entry with unknown fields is kept as unknown, not in the map */
    int rc = unknown ? 0 : PyDict_SetItem(dict, key, value ? value : Py_None);
    Py_DECREF(key);
    Py_XDECREF(value);
    return rc;
error:
    Py_XDECREF(value);
    return -1;
}

static int merge_struct(Reader *r, PyObject *dict, int depth, int *deepest) {
    if (depth > MAX_DEPTH) return fail("nesting too deep");
    if (depth > *deepest) *deepest = depth;
    while (r->p < r->end) {
        uint32_t field, wire;
        Reader inner;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field == 1 && wire == 2) {
            if (read_bytes(r, &inner) < 0 || merge_entry(&inner, dict, depth, deepest) < 0) return -1;
        } else if (skip_field_at(r, field, wire, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

static int merge_list(Reader *r, PyObject *list, int depth, int *deepest) {
    if (depth > MAX_DEPTH) return fail("nesting too deep");
    if (depth > *deepest) *deepest = depth;
    while (r->p < r->end) {
        uint32_t field, wire;
        Reader inner;
        if (read_tag(r, &field, &wire) < 0) return -1;
        if (field == 1 && wire == 2) {
            if (read_bytes(r, &inner) < 0) return -1;
            PyObject *item = read_value(&inner, NULL, depth, deepest);
            if (!item) return -1;
            int rc = PyList_Append(list, item);
            Py_DECREF(item);
            if (rc < 0) return -1;
        } else if (skip_field_at(r, field, wire, 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* The JSON depth of a decoded value (a dict or list is one level more than its deepest item;
 * the decoder bounds the recursion). Only asked when the wire went deeper than the limit: a
 * later value for the same key may have replaced the deep one. */
static int json_depth(PyObject *value) {
    PyObject *items;
    if (PyDict_CheckExact(value)) {
        items = PyDict_Values(value);
        if (!items) return -1;
    } else if (PyList_CheckExact(value)) {
        items = Py_NewRef(value);
    } else {
        return 0;
    }
    int deepest = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        int d = json_depth(PyList_GET_ITEM(items, i));
        if (d < 0) {
            deepest = -2;
            break;
        }
        if (d > deepest) deepest = d;
    }
    Py_DECREF(items);
    return deepest + 1;
}

static PyObject *decode_request(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {view.buf, (const unsigned char *)view.buf + view.len};
    PyObject *unit_id = NULL, *attributes = PyDict_New(), *keys = PyList_New(0), *out = NULL;
    int skip = 0, deepest = 0;
    Py_ssize_t attribute_bytes = 0;
    if (!attributes || !keys) goto done;
    while (r.p < r.end) {
        uint32_t field, wire;
        Reader inner;
        if (read_tag(&r, &field, &wire) < 0) goto done;
        if (field == 1 && wire == 2) {
            if (read_bytes(&r, &inner) < 0) goto done;
            PyObject *s = utf8(&inner);
            if (!s) goto done;
            Py_XSETREF(unit_id, s);
        } else if (field == 2 && wire == 2) {
            if (read_bytes(&r, &inner) < 0) goto done;
            attribute_bytes += inner.end - inner.p;
            if (merge_struct(&inner, attributes, 1, &deepest) < 0) goto done;
        } else if (field == 3 && wire == 2) {
            if (read_bytes(&r, &inner) < 0) goto done;
            PyObject *s = utf8(&inner);
            if (!s) goto done;
            int rc = PyList_Append(keys, s);
            Py_DECREF(s);
            if (rc < 0) goto done;
        } else if (field == 4 && wire == 0) {
            uint64_t flag;
            if (read_varint(&r, &flag) < 0) goto done;
            skip = flag != 0;
        } else if (field >= FIRST_OPTION_FIELD && field <= LAST_OPTION_FIELD) {
            PyErr_SetString(PyExc_ValueError, "AssignRequest options: left to the reference");
            goto done;
        } else if (skip_field_at(&r, field, wire, 0) < 0) {
            goto done;
        }
    }
    if (!unit_id && !(unit_id = PyUnicode_FromStringAndSize("", 0))) goto done;
    if (attribute_bytes > MAX_ATTRIBUTES_BYTES) {
        limit_error("attributes", PyUnicode_FromFormat("are %zd bytes; at most %d allowed",
                                                       attribute_bytes, MAX_ATTRIBUTES_BYTES));
        goto done;
    }
    if (deepest > MAX_ATTRIBUTES_DEPTH) {
        int depth = json_depth(attributes);
        if (depth < 0) goto done;
        if (depth > MAX_ATTRIBUTES_DEPTH) {
            limit_error("attributes", PyUnicode_FromFormat("nest more than %d levels deep",
                                                           MAX_ATTRIBUTES_DEPTH));
            goto done;
        }
    }
    PyObject *key_tuple = PyList_AsTuple(keys);
    if (key_tuple) {
        out = PyTuple_Pack(DECODED_LENGTH, unit_id, attributes, key_tuple,
                           skip ? Py_True : Py_False, Py_None);
        Py_DECREF(key_tuple);
    }
done:
    Py_XDECREF(unit_id);
    Py_XDECREF(attributes);
    Py_XDECREF(keys);
    PyBuffer_Release(&view);
    return out;
}

static Py_ssize_t position(PyObject *reason, PyObject *reasons) {
    Py_ssize_t n = PyTuple_GET_SIZE(reasons);
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyTuple_GET_ITEM(reasons, i) == reason) return i;
    return -1;
}

/* The prebuilt entry of one result, or NULL with no exception when it has none (an unknown key,
 * a variant index out of range, a reason without an entry), NULL with an exception for inputs
 * of the wrong shape. Returns a new reference. */
static PyObject *entry_of(PyObject *r, PyObject *tables, PyObject *in_reasons,
                          PyObject *out_reasons, Py_ssize_t *kind) {
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < 4) return NULL;
    PyObject *table = PyDict_GetItemWithError(tables, PyTuple_GET_ITEM(r, 0));
    if (!table) return NULL;
    if (!PyTuple_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "tables must map experiment keys to tuples");
        return NULL;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(table), n_in = PyTuple_GET_SIZE(in_reasons),
               n_out = PyTuple_GET_SIZE(out_reasons);
    if (size < n_out) {
        PyErr_SetString(PyExc_ValueError, "a prebuilt table is smaller than out_reasons");
        return NULL;
    }
    Py_ssize_t variants = (size - n_out) / n_in, slot;
    PyObject *reason = PyTuple_GET_ITEM(r, 3);
    Py_ssize_t j = position(reason, in_reasons);
    if (j >= 0) {
        PyObject *index_obj = PyTuple_GET_ITEM(r, 2);
        if (!PyLong_Check(index_obj)) return NULL;
        Py_ssize_t index = PyLong_AsSsize_t(index_obj);
        if (index == -1 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large: out of range */
            return NULL;
        }
        if (index < 0 || index >= variants) return NULL;
        slot = j * variants + index;
        *kind = j;
    } else {
        j = position(reason, out_reasons);
        if (j < 0) return NULL;
        slot = n_in * variants + j;
        *kind = n_in + j;
    }
    if (slot < 0 || slot >= size) return NULL; /* unreachable given the checks above */
    PyObject *entry = PyTuple_GET_ITEM(table, slot);
    return PyBytes_Check(entry) ? Py_NewRef(entry) : NULL;
}

/* encode(results, tables, in_reasons, out_reasons, tail[, counts]): the prebuilt entries of
 * `results` joined, then `tail`; None when one has no entry. With `counts` (a writable buffer of
 * unsigned 64-bit counters, one per reason of in_reasons + out_reasons), each result's reason is
 * counted there once the join succeeds: the decisions metric costs no Python per result. */
static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if ((nargs != 5 && nargs != 6) || !PyList_Check(args[0]) || !PyDict_Check(args[1]) ||
        !PyTuple_Check(args[2]) || !PyTuple_Check(args[3]) || !PyBytes_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "encode(results: list, tables: dict, in_reasons: tuple, "
                        "out_reasons: tuple, tail: bytes[, counts: writable buffer])");
        return NULL;
    }
    PyObject *results = args[0], *tables = args[1], *in_reasons = args[2],
             *out_reasons = args[3], *tail = args[4];
    Py_ssize_t n_in = PyTuple_GET_SIZE(in_reasons), n_out = PyTuple_GET_SIZE(out_reasons);
    if (n_in == 0) {
        PyErr_SetString(PyExc_ValueError, "in_reasons must not be empty");
        return NULL;
    }
    Py_buffer counts = {0};
    int counting = nargs == 6 && args[5] != Py_None;
    if (counting) {
        if (PyObject_GetBuffer(args[5], &counts, PyBUF_WRITABLE) < 0) return NULL;
        if (counts.len < (Py_ssize_t)sizeof(unsigned long long) * (n_in + n_out)) {
            PyBuffer_Release(&counts);
            PyErr_SetString(PyExc_ValueError, "counts holds fewer counters than reasons");
            return NULL;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(results), done = 0;
    /* The entries are owned: a key's __eq__ (Python) may change `tables` meanwhile. */
    PyObject **parts = PyMem_Malloc(sizeof(PyObject *) * (size_t)(n ? n : 1));
    Py_ssize_t *kinds = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    if (!parts || !kinds) {
        PyMem_Free(parts);
        PyMem_Free(kinds);
        if (counting) PyBuffer_Release(&counts);
        return PyErr_NoMemory();
    }
    PyObject *out = NULL;
    Py_ssize_t total = PyBytes_GET_SIZE(tail);
    for (; done < n; done++) {
        if (done >= PyList_GET_SIZE(results)) {
            PyErr_SetString(PyExc_RuntimeError, "results changed during encode");
            goto finish;
        }
        PyObject *r = Py_NewRef(PyList_GET_ITEM(results, done));
        PyObject *entry = entry_of(r, tables, in_reasons, out_reasons, &kinds[done]);
        Py_DECREF(r);
        if (!entry) {
            if (!PyErr_Occurred()) out = Py_NewRef(Py_None); /* the slow way */
            goto finish;
        }
        parts[done] = entry;
        total += PyBytes_GET_SIZE(entry);
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out) {
        char *w = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < n; i++) {
            memcpy(w, PyBytes_AS_STRING(parts[i]), (size_t)PyBytes_GET_SIZE(parts[i]));
            w += PyBytes_GET_SIZE(parts[i]);
        }
        memcpy(w, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
        if (counting) {
            unsigned long long *c = (unsigned long long *)counts.buf;
            for (Py_ssize_t i = 0; i < n; i++) c[kinds[i]]++;
        }
    }
finish:
    for (Py_ssize_t i = 0; i < done; i++) Py_DECREF(parts[i]);
    PyMem_Free(parts);
    PyMem_Free(kinds);
    if (counting) PyBuffer_Release(&counts);
    return out;
}

static PyObject *unrecorded(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyList_Check(args[0]) || !PyDict_Check(args[2]) ||
        !PyTuple_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "unrecorded(results: list, unit_id, recent: dict, exposed: tuple)");
        return NULL;
    }
    PyObject *results = args[0], *recent = args[2], *exposed = args[3];
    /* Owned, like each result and known variant below: keys' __eq__ may run Python code. */
    PyObject *seen = Py_XNewRef(PyDict_GetItemWithError(recent, args[1]));
    if (!seen && PyErr_Occurred()) return NULL;
    if (seen && !PyDict_Check(seen)) {
        PyErr_SetString(PyExc_TypeError, "recent must map unit ids to dicts");
        Py_DECREF(seen);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(results); i++) {
        PyObject *r = PyList_GET_ITEM(results, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < 4) {
            PyErr_SetString(PyExc_TypeError, "results must be Assignment tuples");
            goto error;
        }
        PyObject *variant = PyTuple_GET_ITEM(r, 1);
        if (variant == Py_None || position(PyTuple_GET_ITEM(r, 3), exposed) < 0) continue;
        Py_INCREF(r);
        int same = 0;
        if (seen) {
            PyObject *known = Py_XNewRef(PyDict_GetItemWithError(seen, PyTuple_GET_ITEM(r, 0)));
            if (known) {
                same = known == variant ? 1 : PyObject_RichCompareBool(known, variant, Py_EQ);
                Py_DECREF(known);
            } else if (PyErr_Occurred()) {
                same = -1;
            }
        }
        if (same == 0 && PyList_Append(out, r) < 0) same = -1;
        Py_DECREF(r);
        if (same < 0) goto error;
    }
    Py_XDECREF(seen);
    return out;
error:
    Py_XDECREF(seen);
    Py_XDECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decode_request", decode_request, METH_O, "AssignRequest bytes -> Python values."},
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL, "Join prebuilt entries."},
    {"unrecorded", (PyCFunction)(void (*)(void))unrecorded, METH_FASTCALL,
     "Results still to record as exposures."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "Compiled steps of the Assign hot path.", -1, methods,
};

/* The positions of Assignment's fields that encode and unrecorded read. */
static PyObject *assignment_fields(void) {
    return Py_BuildValue("(ssss)", "experiment_key", "variant_key", "variant_index", "reason");
}

static int add_owned(PyObject *m, const char *name, PyObject *value) {
    if (!value) return -1;
    int rc = PyModule_AddObjectRef(m, name, value);
    Py_DECREF(value);
    return rc;
}

PyMODINIT_FUNC PyInit__fastpath(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    RequestLimitError = PyErr_NewExceptionWithDoc(
        "verdict_assignment.assign._fastpath.RequestLimitError",
        "A well-formed AssignRequest over a limit; args: (field, description).",
        PyExc_ValueError, NULL);
    if (add_owned(m, "RequestLimitError", Py_XNewRef(RequestLimitError)) < 0 ||
        add_owned(m, "ASSIGNMENT_FIELDS", assignment_fields()) < 0 ||
        add_owned(m, "MAX_ATTRIBUTES_BYTES", PyLong_FromLong(MAX_ATTRIBUTES_BYTES)) < 0 ||
        add_owned(m, "MAX_ATTRIBUTES_DEPTH", PyLong_FromLong(MAX_ATTRIBUTES_DEPTH)) < 0 ||
        add_owned(m, "DECODED_LENGTH", PyLong_FromLong(DECODED_LENGTH)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
