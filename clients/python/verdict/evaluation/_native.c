/* The assignment engine's per-unit loop, compiled: an accelerator for `engine.Evaluator`.
 *
 * `eligibility.evaluate` is the reference implementation and stays the only description of the
 * rules: this file repeats its hot-path steps (schedule, forced variants, hash attribute, layer,
 * targeting, bucket ranges; experiments with other steps call their `python` record field) and GrowthBook's FNV-1a hashes for ASCII text. Everything else calls
 * back into the Python objects the engine compiled: targeting conditions, `hash_value_of` for
 * non-string hash attributes, and the Python hashers for non-ASCII text. Tests run both paths on
 * GrowthBook's vectors and on random units and require identical answers.
 *
 * A `Plan` is built once per Evaluator from one record (a tuple, layout in `parse_record`) per
 * experiment; it keeps the records alive and borrows from them.
 *
 * Experiments with steps only Python implements (fallback attribute, filters, holdout, QA mode)
 * carry a `python` callable in their record, `(unit_id, attributes, now) -> Assignment`: once the
 * schedule is checked, `assign_one` returns its answer instead of running its own steps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 0x811C9DC5u
#define FNV_PRIME 0x01000193u
#define MEMO_ON_STACK 64

static inline uint32_t fnv_update(uint32_t h, const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* The decimal digits of `value` in `out` (at least 10 bytes); returns how many. */
static int decimal(uint32_t value, unsigned char *out) {
    unsigned char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (unsigned char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* Version 2 from the FNV state after the seed: (fnv(str(fnv(seed + value))) % 10000) / 10000. */
static double hash_v2_from(uint32_t seeded, const unsigned char *value, Py_ssize_t nv) {
    unsigned char digits[10];
    uint32_t first = fnv_update(seeded, value, nv);
    uint32_t second = fnv_update(FNV_OFFSET, digits, decimal(first, digits));
    return (double)(second % 10000u) / 10000.0;
}

/* Version 2: (fnv(str(fnv(seed + value))) % 10000) / 10000. */
static double hash_v2(const unsigned char *seed, Py_ssize_t ns, const unsigned char *value,
                      Py_ssize_t nv) {
    return hash_v2_from(fnv_update(FNV_OFFSET, seed, ns), value, nv);
}

/* Version 1: (fnv(value + seed) % 1000) / 1000. */
static double hash_v1(const unsigned char *seed, Py_ssize_t ns, const unsigned char *value,
                      Py_ssize_t nv) {
    uint32_t h = fnv_update(fnv_update(FNV_OFFSET, value, nv), seed, ns);
    return (double)(h % 1000u) / 1000.0;
}

/* ---------------------------------------------------------------------------------------------
 * Condition programs: a targeting condition lowered by `programs.py` into a tree of nodes. Each
 * node decides the values it knows (exact str, float, small int, bool, None; attributes in an
 * exact dict) and calls its fallback (the closure `conditions.py` compiled for the same part)
 * for any other. The program tuple is kept alive by the Program and the nodes borrow from it.
 */

enum {
    OP_AND = 1, OP_OR = 2, OP_NOT = 3, OP_PATH = 4, OP_OBJ_PY = 5,
    V_ALL = 10, V_NOT = 11, V_PY = 12, V_STR = 13, V_BOOL = 14, V_NUM = 15, V_NULL = 16,
    V_EQ_STR = 17, V_IN_STR = 18, V_REL = 19, V_VREL = 20, V_REGEX = 21, V_EXISTS = 22,
};

#define MAX_EXACT_INT 9007199254740992LL /* 2**53 */
#define MAX_DEPTH 64

typedef struct Node {
    int op;
    int flag;             /* negate / expected bool / comparison code / has number */
    double number;
    Py_ssize_t n;         /* children */
    struct Node *children;
    PyObject *value;      /* key, str, set, padded version, regex search */
    PyObject *extra;      /* plain string (V_REL), pad_version (V_VREL) */
    PyObject *fallback;   /* closure, or NULL where the node decides everything */
} Node;

typedef struct {
    PyObject_HEAD
    PyObject *source;
    Node root;
} Program;

static void free_node(Node *node) {
    for (Py_ssize_t i = 0; i < node->n; i++) free_node(&node->children[i]);
    PyMem_Free(node->children);
    node->children = NULL;
    node->n = 0;
}

static int bad_node(const char *what) {
    PyErr_Format(PyExc_ValueError, "malformed condition program: %s", what);
    return -1;
}

static int parse_node(PyObject *t, Node *node, int on_value, int depth);

static int parse_children(PyObject *items, Node *node, int on_value, int depth) {
    if (!PyTuple_Check(items)) return bad_node("children must be a tuple");
    node->n = PyTuple_GET_SIZE(items);
    node->children = PyMem_Calloc((size_t)(node->n ? node->n : 1), sizeof(Node));
    if (!node->children) {
        node->n = 0;
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < node->n; i++)
        if (parse_node(PyTuple_GET_ITEM(items, i), &node->children[i], on_value, depth + 1) < 0)
            return -1;
    return 0;
}

static int one_child(PyObject *t, Py_ssize_t at, Node *node, int on_value, int depth) {
    node->n = 1;
    node->children = PyMem_Calloc(1, sizeof(Node));
    if (!node->children) {
        node->n = 0;
        PyErr_NoMemory();
        return -1;
    }
    return parse_node(PyTuple_GET_ITEM(t, at), node->children, on_value, depth + 1);
}

static int parse_node(PyObject *t, Node *node, int on_value, int depth) {
    if (depth > MAX_DEPTH) return bad_node("nested too deeply");
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 1) return bad_node("a node is a tuple");
    Py_ssize_t size = PyTuple_GET_SIZE(t);
    long op = PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
    if (op == -1 && PyErr_Occurred()) return -1;
    node->op = (int)op;
#define NEED(k) if (size != (k)) return bad_node("wrong number of fields")
#define ITEM(i) PyTuple_GET_ITEM(t, (i))
#define CALLABLE(i) if (!PyCallable_Check(ITEM(i))) return bad_node("fallback must be callable")
    if (!on_value) {
        switch (op) {
        case OP_AND: case OP_OR: NEED(2); return parse_children(ITEM(1), node, 0, depth);
        case OP_NOT: NEED(2); return one_child(t, 1, node, 0, depth);
        case OP_PATH:
            NEED(4); CALLABLE(3);
            if (!PyUnicode_CheckExact(ITEM(1))) return bad_node("path key must be a str");
            node->value = ITEM(1);
            node->fallback = ITEM(3);
            return one_child(t, 2, node, 1, depth);
        case OP_OBJ_PY: NEED(2); CALLABLE(1); node->fallback = ITEM(1); return 0;
        default: return bad_node("unknown opcode on attributes");
        }
    }
    switch (op) {
    case V_ALL: NEED(2); return parse_children(ITEM(1), node, 1, depth);
    case V_NOT: NEED(2); return one_child(t, 1, node, 1, depth);
    case V_PY: NEED(2); CALLABLE(1); node->fallback = ITEM(1); return 0;
    case V_NULL: NEED(1); return 0;
    case V_STR: case V_REGEX:
        NEED(3); CALLABLE(2);
        if (op == V_STR ? !PyUnicode_CheckExact(ITEM(1)) : !PyCallable_Check(ITEM(1)))
            return bad_node("V_STR needs a str, V_REGEX a test function");
        node->value = ITEM(1);
        node->fallback = ITEM(2);
        return 0;
    case V_BOOL:
        NEED(3); CALLABLE(2);
        if (!PyBool_Check(ITEM(1))) return bad_node("V_BOOL needs a bool");
        node->flag = ITEM(1) == Py_True;
        node->fallback = ITEM(2);
        return 0;
    case V_NUM:
        NEED(3); CALLABLE(2);
        if (!PyFloat_CheckExact(ITEM(1))) return bad_node("V_NUM needs a float");
        node->number = PyFloat_AS_DOUBLE(ITEM(1));
        node->fallback = ITEM(2);
        return 0;
    case V_EQ_STR:
        NEED(3);
        if (!PyUnicode_CheckExact(ITEM(1)) || !PyBool_Check(ITEM(2)))
            return bad_node("V_EQ_STR needs a str and a bool");
        node->value = ITEM(1);
        node->flag = ITEM(2) == Py_True;
        return 0;
    case V_IN_STR:
        NEED(4); CALLABLE(3);
        if (!PyFrozenSet_CheckExact(ITEM(1)) || !PyBool_Check(ITEM(2)))
            return bad_node("V_IN_STR needs a frozenset and a bool");
        node->value = ITEM(1);
        node->flag = ITEM(2) == Py_True;
        node->fallback = ITEM(3);
        return 0;
    case V_REL: {
        NEED(5); CALLABLE(4);
        long code = PyLong_AsLong(ITEM(1));
        if (code == -1 && PyErr_Occurred()) return -1;
        if (code < Py_LT || code > Py_GE) return bad_node("comparison code out of range");
        PyObject *number = ITEM(2), *plain = ITEM(3);
        if (number != Py_None && !PyFloat_CheckExact(number)) return bad_node("V_REL number");
        if (plain != Py_None && !(PyUnicode_CheckExact(plain) && PyUnicode_IS_ASCII(plain)))
            return bad_node("V_REL plain string must be ASCII");
        node->flag = (int)code;
        node->value = number == Py_None ? NULL : number;
        if (node->value) node->number = PyFloat_AS_DOUBLE(number);
        node->extra = plain == Py_None ? NULL : plain;
        node->fallback = ITEM(4);
        return 0;
    }
    case V_VREL: {
        NEED(5); CALLABLE(3); CALLABLE(4);
        long code = PyLong_AsLong(ITEM(1));
        if (code == -1 && PyErr_Occurred()) return -1;
        if (code < Py_LT || code > Py_GE) return bad_node("comparison code out of range");
        if (!PyUnicode_CheckExact(ITEM(2))) return bad_node("V_VREL needs a padded str");
        node->flag = (int)code;
        node->value = ITEM(2);
        node->extra = ITEM(3);
        node->fallback = ITEM(4);
        return 0;
    }
    case V_EXISTS:
        NEED(2);
        if (!PyBool_Check(ITEM(1))) return bad_node("V_EXISTS needs a bool");
        node->flag = ITEM(1) == Py_True;
        return 0;
    default: return bad_node("unknown opcode on a value");
    }
#undef NEED
#undef ITEM
#undef CALLABLE
}

static int call_bool(PyObject *fn, PyObject *arg) {
    PyObject *r = PyObject_CallOneArg(fn, arg);
    if (!r) return -1;
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    return ok;
}

static inline int compare_doubles(double a, double b, int code) {
    switch (code) {
    case Py_LT: return a < b;
    case Py_LE: return a <= b;
    case Py_EQ: return a == b;
    case Py_NE: return a != b;
    case Py_GT: return a > b;
    default: return a >= b;
    }
}

/* An exact int within +-2**53 as a double (exactly); 0 when it is not one. */
static int small_int(PyObject *v, double *out) {
    if (!PyLong_CheckExact(v)) return 0;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < -MAX_EXACT_INT || x > MAX_EXACT_INT) return 0;
    *out = (double)x;
    return 1;
}

static int eval_value(Node *node, PyObject *v);

static int eval_obj(Node *node, PyObject *obj) {
    switch (node->op) {
    case OP_AND:
        for (Py_ssize_t i = 0; i < node->n; i++) {
            int ok = eval_obj(&node->children[i], obj);
            if (ok <= 0) return ok;
        }
        return 1;
    case OP_OR:
        if (node->n == 0) return 1; /* GrowthBook: an empty $or holds */
        for (Py_ssize_t i = 0; i < node->n; i++) {
            int ok = eval_obj(&node->children[i], obj);
            if (ok != 0) return ok;
        }
        return 0;
    case OP_NOT: {
        int ok = eval_obj(node->children, obj);
        return ok < 0 ? ok : !ok;
    }
    case OP_PATH: {
        if (!PyDict_CheckExact(obj)) return call_bool(node->fallback, obj);
        PyObject *v = PyDict_GetItemWithError(obj, node->value);
        if (!v) {
            if (PyErr_Occurred()) return -1;
            v = Py_None;
        }
        Py_INCREF(v); /* a fallback is Python code: it may change the dict under us */
        int ok = eval_value(node->children, v);
        Py_DECREF(v);
        return ok;
    }
    default: /* OP_OBJ_PY */
        return call_bool(node->fallback, obj);
    }
}

static int eval_value(Node *node, PyObject *v) {
    switch (node->op) {
    case V_ALL:
        for (Py_ssize_t i = 0; i < node->n; i++) {
            int ok = eval_value(&node->children[i], v);
            if (ok <= 0) return ok;
        }
        return 1;
    case V_NOT: {
        int ok = eval_value(node->children, v);
        return ok < 0 ? ok : !ok;
    }
    case V_NULL: return v == Py_None;
    case V_EXISTS: return node->flag ? v != Py_None : v == Py_None;
    case V_EQ_STR: {
        int equal = 0;
        if (PyUnicode_CheckExact(v)) {
            equal = PyUnicode_Compare(v, node->value) == 0;
            if (!equal && PyErr_Occurred()) return -1;
        }
        return equal != node->flag;
    }
    case V_STR:
        if (PyUnicode_CheckExact(v)) {
            int equal = PyUnicode_Compare(v, node->value) == 0;
            return (!equal && PyErr_Occurred()) ? -1 : equal;
        }
        break;
    case V_BOOL:
        if (PyBool_Check(v)) return (v == Py_True) == node->flag;
        break;
    case V_NUM: {
        double x;
        if (PyFloat_CheckExact(v)) return PyFloat_AS_DOUBLE(v) == node->number;
        if (small_int(v, &x)) return x == node->number;
        break;
    }
    case V_IN_STR:
        if (PyUnicode_CheckExact(v)) {
            int found = PySet_Contains(node->value, v);
            return found < 0 ? -1 : found != node->flag;
        }
        break;
    case V_REL: {
        double x;
        if (node->value && PyFloat_CheckExact(v))
            return compare_doubles(PyFloat_AS_DOUBLE(v), node->number, node->flag);
        if (node->value && small_int(v, &x)) return compare_doubles(x, node->number, node->flag);
        if (node->extra && PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v))
            return PyObject_RichCompareBool(v, node->extra, node->flag);
        break;
    }
    case V_VREL:
        if (PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v)) {
            PyObject *padded = PyObject_CallOneArg(node->extra, v);
            if (!padded) return -1;
            int ok = PyObject_RichCompareBool(padded, node->value, node->flag);
            Py_DECREF(padded);
            return ok;
        }
        break;
    case V_REGEX:
        if (PyUnicode_CheckExact(v)) return call_bool(node->value, v);
        break;
    default: /* V_PY */
        break;
    }
    return call_bool(node->fallback, v);
}

/* GC support: the fallbacks are closures, which may well refer back to what holds the Program. */
static int program_traverse(Program *self, visitproc visit, void *arg) {
    Py_VISIT(self->source);
    return 0;
}

static int program_clear(Program *self) {
    free_node(&self->root); /* the nodes borrow from `source` */
    memset(&self->root, 0, sizeof(Node));
    Py_CLEAR(self->source);
    return 0;
}

static void program_dealloc(Program *self) {
    PyObject_GC_UnTrack(self);
    program_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int cleared(PyObject *source) {
    if (source) return 0;
    PyErr_SetString(PyExc_ValueError, "the program was cleared by the garbage collector");
    return 1;
}

static PyObject *program_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *source;
    static char *names[] = {"program", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!", names, &PyTuple_Type, &source))
        return NULL;
    Program *self = (Program *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->source = Py_NewRef(source);
    if (parse_node(source, &self->root, 0, 0) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *program_call(Program *self, PyObject *args, PyObject *kwargs) {
    PyObject *attributes;
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "a program takes the attributes only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O", &attributes) || cleared(self->source)) return NULL;
    int ok = eval_obj(&self->root, attributes);
    if (ok < 0) return NULL;
    return PyBool_FromLong(ok);
}

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "verdict.evaluation._native.Program",
    .tp_basicsize = sizeof(Program),
    .tp_dealloc = (destructor)program_dealloc,
    .tp_call = (ternaryfunc)program_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)program_traverse,
    .tp_clear = (inquiry)program_clear,
    .tp_free = PyObject_GC_Del,
    .tp_doc = "Program(lowered) -> a compiled targeting condition; call it with the attributes "
              "(see programs.py).",
    .tp_new = program_new,
};

/* A condition: a Program evaluated in place, or any other callable called. */
static int check_condition(PyObject *condition, PyObject *attributes) {
    if (Py_IS_TYPE(condition, &ProgramType)) {
        Program *program = (Program *)condition;
        return cleared(program->source) ? -1 : eval_obj(&program->root, attributes);
    }
    return call_bool(condition, attributes);
}

typedef struct {
    PyObject *key;
    int running;
    double start, end;
    PyObject *hash_attribute;
    PyObject *forced; /* dict, or NULL when empty */
    PyObject *layer_seed; /* str, or NULL without a layer */
    double layer_start, layer_end;
    PyObject *layer_hash; /* Python fallback: value -> position */
    PyObject *condition; /* callable, or NULL */
    int slot; /* memo slot of the condition within one call */
    PyObject *seed;
    int ascii_seed; /* seed is ASCII: `seeded` holds the FNV state after it (version 2) */
    uint32_t seeded;
    int version;
    PyObject *hasher; /* Python fallback: value -> float or None */
    Py_ssize_t n_ranges;
    double *ranges; /* start, end, start, end, ... */
    PyObject *variant_keys, *payloads;
    PyObject *not_running, *not_targeted, *not_in_layer, *no_hash_attribute;
    PyObject *assigned; /* per variant, without a bucket (buckets=False) */
    PyObject *not_in_traffic; /* without a bucket */
    PyObject *python; /* callable answering for this experiment (eligibility.evaluate), or NULL */
} Experiment;

typedef struct {
    PyObject_HEAD
    PyObject *records;
    Py_ssize_t n;
    Experiment *experiments;
    int slots;
    int buckets; /* results carry their bucket (a new object each) */
    PyTypeObject *assignment;
    PyObject *assigned, *not_in_traffic, *hash_value_of;
} Plan;

/* GC support: the records hold closures (hashers, conditions) that may refer back to the plan. */
static int plan_traverse(Plan *self, visitproc visit, void *arg) {
    Py_VISIT(self->records);
    Py_VISIT(self->assignment);
    Py_VISIT(self->assigned);
    Py_VISIT(self->not_in_traffic);
    Py_VISIT(self->hash_value_of);
    return 0;
}

static int plan_clear(Plan *self) {
    if (self->experiments) { /* they borrow from `records`: gone with them */
        for (Py_ssize_t i = 0; i < self->n; i++) PyMem_Free(self->experiments[i].ranges);
        PyMem_Free(self->experiments);
        self->experiments = NULL;
    }
    self->n = 0;
    Py_CLEAR(self->records);
    Py_CLEAR(self->assignment);
    Py_CLEAR(self->assigned);
    Py_CLEAR(self->not_in_traffic);
    Py_CLEAR(self->hash_value_of);
    return 0;
}

static void plan_dealloc(Plan *self) {
    PyObject_GC_UnTrack(self);
    plan_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The names of a record's fields, in the order `parse_record` reads them; engine.py builds its
 * records from this tuple (exported as RECORD_FIELDS), so the two cannot drift apart. */
static const char *const RECORD_FIELDS[] = {
    "key", "running", "start", "end", "hash_attribute", "forced", "layer_seed", "layer_start",
    "layer_end", "layer_hash", "condition", "slot", "seed", "hash_version", "hasher", "ranges",
    "variant_keys", "payloads", "not_running", "not_targeted", "not_in_layer",
    "no_hash_attribute", "assigned", "not_in_traffic", "python", NULL,
};
#define RECORD_FORMAT "UpddUOOddOOiUiOOOOOOOOO!OO"

/* The fields of `engine.Assignment`, in the order `make_assignment` fills them (exported as
 * ASSIGNMENT_FIELDS; engine.py refuses to start when they differ from the NamedTuple's). */
static const char *const ASSIGNMENT_FIELDS[] = {
    "experiment_key", "variant_key", "variant_index", "reason", "payload_json", "bucket",
    "in_experiment", NULL,
};
#define ASSIGNMENT_SIZE 7

static int parse_record(PyObject *record, Experiment *e, int slots) {
    PyObject *forced, *layer_seed, *layer_hash, *condition, *ranges, *python;
    if (!PyTuple_Check(record)) {
        PyErr_SetString(PyExc_TypeError, "each record must be a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(record, RECORD_FORMAT, &e->key, &e->running, &e->start,
                          &e->end, &e->hash_attribute, &forced, &layer_seed, &e->layer_start,
                          &e->layer_end, &layer_hash, &condition, &e->slot, &e->seed,
                          &e->version, &e->hasher, &ranges, &e->variant_keys, &e->payloads,
                          &e->not_running, &e->not_targeted, &e->not_in_layer,
                          &e->no_hash_attribute, &PyTuple_Type, &e->assigned,
                          &e->not_in_traffic, &python))
        return -1;
    if (python != Py_None && !PyCallable_Check(python)) {
        PyErr_SetString(PyExc_TypeError, "python must be None or callable");
        return -1;
    }
    e->python = python == Py_None ? NULL : python;
    e->ascii_seed = PyUnicode_IS_ASCII(e->seed);
    if (e->ascii_seed)
        e->seeded = fnv_update(FNV_OFFSET, PyUnicode_1BYTE_DATA(e->seed),
                               PyUnicode_GET_LENGTH(e->seed));
    e->forced = (PyDict_Check(forced) && PyDict_GET_SIZE(forced)) ? forced : NULL;
    e->layer_seed = PyUnicode_Check(layer_seed) ? layer_seed : NULL;
    e->layer_hash = layer_hash;
    e->condition = condition == Py_None ? NULL : condition;
    if (e->condition && (e->slot < 0 || e->slot >= slots)) {
        PyErr_SetString(PyExc_ValueError, "condition slot out of range");
        return -1;
    }
    if (!PyTuple_Check(ranges) || PyTuple_GET_SIZE(ranges) % 2 ||
        !PyTuple_Check(e->variant_keys) || !PyTuple_Check(e->payloads) ||
        PyTuple_GET_SIZE(e->variant_keys) * 2 < PyTuple_GET_SIZE(ranges) ||
        PyTuple_GET_SIZE(e->payloads) * 2 < PyTuple_GET_SIZE(ranges) ||
        PyTuple_GET_SIZE(e->assigned) * 2 < PyTuple_GET_SIZE(ranges)) {
        PyErr_SetString(PyExc_ValueError, "ranges must be a flat tuple, one pair per variant");
        return -1;
    }
    e->n_ranges = PyTuple_GET_SIZE(ranges) / 2;
    e->ranges = PyMem_Malloc(sizeof(double) * (size_t)(2 * e->n_ranges + 1));
    if (!e->ranges) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < 2 * e->n_ranges; i++) {
        e->ranges[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(ranges, i));
        if (e->ranges[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *plan_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *records, *assignment, *assigned, *not_in_traffic, *hash_value_of;
    int slots, buckets = 1;
    static char *names[] = {"records", "slots", "assignment", "assigned", "not_in_traffic",
                            "hash_value_of", "buckets", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!iO!OOO|p", names, &PyTuple_Type, &records,
                                     &slots, &PyType_Type, &assignment, &assigned,
                                     &not_in_traffic, &hash_value_of, &buckets))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)assignment, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "assignment must be a tuple subclass");
        return NULL;
    }
    Plan *self = (Plan *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    Py_INCREF(records);
    self->records = records;
    self->n = PyTuple_GET_SIZE(records);
    self->slots = slots < 0 ? 0 : slots;
    self->buckets = buckets;
    self->assignment = (PyTypeObject *)Py_NewRef(assignment);
    self->assigned = Py_NewRef(assigned);
    self->not_in_traffic = Py_NewRef(not_in_traffic);
    self->hash_value_of = Py_NewRef(hash_value_of);
    self->experiments = PyMem_Calloc((size_t)(self->n ? self->n : 1), sizeof(Experiment));
    if (!self->experiments) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        if (parse_record(PyTuple_GET_ITEM(records, i), &self->experiments[i], self->slots) < 0) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

/* Assignment(key, variant_key, index, reason, payload, bucket, in_experiment). */
static PyObject *make_assignment(Plan *plan, Experiment *e, Py_ssize_t index, double bucket) {
    PyObject *bucket_obj = PyFloat_FromDouble(bucket);
    if (!bucket_obj) return NULL;
    PyObject *out = plan->assignment->tp_alloc(plan->assignment, ASSIGNMENT_SIZE);
    if (!out) {
        Py_DECREF(bucket_obj);
        return NULL;
    }
    if (index >= 0) {
        PyObject *i = PyLong_FromSsize_t(index);
        if (!i) {
            Py_DECREF(bucket_obj);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, 1, Py_NewRef(PyTuple_GET_ITEM(e->variant_keys, index)));
        PyTuple_SET_ITEM(out, 2, i);
        PyTuple_SET_ITEM(out, 3, Py_NewRef(plan->assigned));
        PyTuple_SET_ITEM(out, 4, Py_NewRef(PyTuple_GET_ITEM(e->payloads, index)));
        PyTuple_SET_ITEM(out, 6, Py_NewRef(Py_True));
    } else {
        PyObject *minus_one = PyLong_FromLong(-1);
        if (!minus_one) {
            Py_DECREF(bucket_obj);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, 1, Py_NewRef(Py_None));
        PyTuple_SET_ITEM(out, 2, minus_one);
        PyTuple_SET_ITEM(out, 3, Py_NewRef(plan->not_in_traffic));
        PyTuple_SET_ITEM(out, 4, Py_NewRef(Py_None));
        PyTuple_SET_ITEM(out, 6, Py_NewRef(Py_False));
    }
    PyTuple_SET_ITEM(out, 0, Py_NewRef(e->key));
    PyTuple_SET_ITEM(out, 5, bucket_obj);
    return out;
}

/* A float from a Python fallback hasher; sets *none when it answered None. */
static int call_hash(PyObject *fn, PyObject *value, double *out, int *none) {
    PyObject *r = PyObject_CallOneArg(fn, value);
    if (!r) return -1;
    *none = r == Py_None;
    if (!*none) *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return (!*none && *out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* What one call's experiments share: conditions' answers (per memo slot), the last hash
 * attribute read and the last layer position computed (experiments mostly share both). Values
 * read from the attributes are owned: fallbacks and hashers are Python code, which may change
 * the dict while C still uses them. */
typedef struct {
    signed char *memo;    /* condition slot -> -1 unknown, 0, 1; or NULL */
    PyObject *attribute;  /* name of the hash attribute last read (the plan's), or NULL */
    PyObject *raw;        /* its value in the attributes (owned), NULL when absent */
    PyObject *layer_seed; /* layer seed (the plan's) and str hash value (owned) of the last */
    PyObject *layer_value; /* position computed */
    double layer_position;
} Call;

static void end_call(Call *call) {
    Py_CLEAR(call->raw);
    Py_CLEAR(call->layer_value);
}

/* The answer of an experiment's `python` callable, which must be an Assignment (a tuple of
 * ASSIGNMENT_SIZE): callers of the plan read results by position. */
static PyObject *call_python(PyObject *python, PyObject *unit_id, PyObject *attributes,
                             double now) {
    PyObject *now_obj = PyFloat_FromDouble(now);
    if (!now_obj) return NULL;
    PyObject *args[3] = {unit_id, attributes, now_obj};
    PyObject *out = PyObject_Vectorcall(python, args, 3, NULL);
    Py_DECREF(now_obj);
    if (out && !(PyTuple_Check(out) && PyTuple_GET_SIZE(out) == ASSIGNMENT_SIZE)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "an experiment's python callable must return an "
                                         "Assignment");
        return NULL;
    }
    return out;
}

/* `eligibility.evaluate`'s hot-path steps, one for one. Returns a new reference, or NULL with an exception. */
static PyObject *assign_one(Plan *plan, Experiment *e, PyObject *unit_id, PyObject *attributes,
                            double now, Call *call) {
    if (!e->running || !(e->start <= now && now < e->end)) return Py_NewRef(e->not_running);
    if (e->python) return call_python(e->python, unit_id, attributes, now);
    PyObject *raw;
    if (call->attribute == e->hash_attribute) {
        raw = call->raw;
    } else {
        raw = PyDict_GetItemWithError(attributes, e->hash_attribute);
        if (!raw && PyErr_Occurred()) return NULL;
        call->attribute = e->hash_attribute;
        Py_XSETREF(call->raw, Py_XNewRef(raw));
    }
    PyObject *owned = NULL, *hash_value = NULL;
    if (raw && PyUnicode_CheckExact(raw)) {
        hash_value = PyUnicode_GET_LENGTH(raw) ? raw : NULL;
    } else if (raw) {
        owned = PyObject_CallOneArg(plan->hash_value_of, raw);
        if (!owned) return NULL;
        hash_value = owned == Py_None ? NULL : owned;
    }
    PyObject *result = NULL;
    if (e->forced) {
        PyObject *hit = PyDict_GetItemWithError(e->forced, unit_id);
        if (!hit && !PyErr_Occurred() && hash_value)
            hit = PyDict_GetItemWithError(e->forced, hash_value);
        if (hit) {
            result = Py_NewRef(hit);
            goto done;
        }
        if (PyErr_Occurred()) goto done;
    }
    if (!hash_value) {
        result = Py_NewRef(e->no_hash_attribute);
        goto done;
    }
    int ascii = PyUnicode_CheckExact(hash_value) && PyUnicode_IS_ASCII(hash_value);
    const unsigned char *text = ascii ? PyUnicode_1BYTE_DATA(hash_value) : NULL;
    Py_ssize_t length = ascii ? PyUnicode_GET_LENGTH(hash_value) : 0;
    if (e->layer_seed) {
        double position;
        int none = 0;
        if (!owned && call->layer_seed == e->layer_seed && call->layer_value == hash_value) {
            position = call->layer_position; /* same layer, same unit: same position */
        } else if (ascii && PyUnicode_IS_ASCII(e->layer_seed)) {
            position = hash_v1(PyUnicode_1BYTE_DATA(e->layer_seed),
                               PyUnicode_GET_LENGTH(e->layer_seed), text, length);
            if (!owned) { /* a str from the attributes: its pointer identifies it for the call */
                call->layer_seed = e->layer_seed;
                Py_XSETREF(call->layer_value, Py_NewRef(hash_value));
                call->layer_position = position;
            }
        } else if (call_hash(e->layer_hash, hash_value, &position, &none) < 0) {
            goto done;
        }
        if (none || !(e->layer_start <= position && position < e->layer_end)) {
            result = Py_NewRef(e->not_in_layer);
            goto done;
        }
    }
    if (e->condition) {
        int ok = call->memo ? call->memo[e->slot] : -1;
        if (ok < 0) {
            ok = check_condition(e->condition, attributes);
            if (ok < 0) goto done;
            if (call->memo) call->memo[e->slot] = (signed char)ok;
        }
        if (!ok) {
            result = Py_NewRef(e->not_targeted);
            goto done;
        }
    }
    double n;
    int none = 0;
    if (ascii && e->ascii_seed && (e->version == 1 || e->version == 2)) {
        n = e->version == 2 ? hash_v2_from(e->seeded, text, length)
                            : hash_v1(PyUnicode_1BYTE_DATA(e->seed), PyUnicode_GET_LENGTH(e->seed),
                                      text, length);
    } else if (call_hash(e->hasher, hash_value, &n, &none) < 0) {
        goto done;
    }
    if (none) { /* unreachable: configurations admit only known hash versions */
        PyObject *args = Py_BuildValue("(OOiOOOO)", e->key, Py_None, -1, plan->not_in_traffic,
                                       Py_None, Py_None, Py_False);
        if (args) {
            result = PyObject_Call((PyObject *)plan->assignment, args, NULL);
            Py_DECREF(args);
        }
        goto done;
    }
    for (Py_ssize_t i = 0; i < e->n_ranges; i++) {
        if (e->ranges[2 * i] <= n && n < e->ranges[2 * i + 1]) {
            result = plan->buckets ? make_assignment(plan, e, i, n)
                                   : Py_NewRef(PyTuple_GET_ITEM(e->assigned, i));
            goto done;
        }
    }
    result = plan->buckets ? make_assignment(plan, e, -1, n) : Py_NewRef(e->not_in_traffic);
done:
    Py_XDECREF(owned);
    return result;
}

static int check_call(PyObject *unit_id, PyObject *attributes) {
    if (!PyUnicode_Check(unit_id)) {
        PyErr_SetString(PyExc_TypeError, "unit_id must be a str");
        return -1;
    }
    if (!PyDict_Check(attributes)) {
        PyErr_SetString(PyExc_TypeError, "attributes must be a dict");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(assign_running_doc,
             "assign_running(unit_id, attributes, now) -> list\n\n"
             "The assignment in every running experiment, in plan order; each distinct "
             "condition is evaluated at most once per call.");

static PyObject *plan_assign_running(Plan *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "assign_running(unit_id, attributes, now)");
        return NULL;
    }
    PyObject *unit_id = args[0], *attributes = args[1];
    double now = PyFloat_AsDouble(args[2]);
    if ((now == -1.0 && PyErr_Occurred()) || check_call(unit_id, attributes) < 0) return NULL;
    signed char stack_memo[MEMO_ON_STACK];
    signed char *memo = self->slots <= MEMO_ON_STACK ? stack_memo : PyMem_Malloc((size_t)self->slots);
    if (!memo) return PyErr_NoMemory();
    memset(memo, -1, (size_t)(self->slots ? self->slots : 1));
    Call call = {.memo = memo};
    PyObject *out = PyList_New(0);
    if (out) {
        for (Py_ssize_t i = 0; i < self->n; i++) {
            Experiment *e = &self->experiments[i];
            if (!e->running) continue;
            PyObject *a = assign_one(self, e, unit_id, attributes, now, &call);
            if (!a || PyList_Append(out, a) < 0) {
                Py_XDECREF(a);
                Py_CLEAR(out);
                break;
            }
            Py_DECREF(a);
        }
    }
    end_call(&call);
    if (memo != stack_memo) PyMem_Free(memo);
    return out;
}

PyDoc_STRVAR(assign_at_doc,
             "assign_at(index, unit_id, attributes, now) -> Assignment\n\n"
             "The assignment in the experiment at `index` of the plan.");

static PyObject *plan_assign_at(Plan *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "assign_at(index, unit_id, attributes, now)");
        return NULL;
    }
    Py_ssize_t index = PyLong_AsSsize_t(args[0]);
    if (index == -1 && PyErr_Occurred()) return NULL;
    if (index < 0 || index >= self->n) {
        PyErr_SetString(PyExc_IndexError, "experiment index out of range");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[3]);
    if ((now == -1.0 && PyErr_Occurred()) || check_call(args[1], args[2]) < 0) return NULL;
    Call call = {.memo = NULL};
    PyObject *out = assign_one(self, &self->experiments[index], args[1], args[2], now, &call);
    end_call(&call);
    return out;
}

PyDoc_STRVAR(hash_doc,
             "hash_ascii(seed, value, version) -> float\n\n"
             "GrowthBook's hash of ASCII text (versions 1 and 2); ValueError otherwise.");

static PyObject *native_hash_ascii(PyObject *module, PyObject *args) {
    PyObject *seed, *value;
    int version;
    if (!PyArg_ParseTuple(args, "UUi", &seed, &value, &version)) return NULL;
    if (!PyUnicode_IS_ASCII(seed) || !PyUnicode_IS_ASCII(value) || (version != 1 && version != 2)) {
        PyErr_SetString(PyExc_ValueError, "ASCII text and version 1 or 2 only");
        return NULL;
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(seed), *v = PyUnicode_1BYTE_DATA(value);
    Py_ssize_t ns = PyUnicode_GET_LENGTH(seed), nv = PyUnicode_GET_LENGTH(value);
    return PyFloat_FromDouble(version == 2 ? hash_v2(s, ns, v, nv) : hash_v1(s, ns, v, nv));
}

static PyMethodDef plan_methods[] = {
    {"assign_running", (PyCFunction)(void (*)(void))plan_assign_running, METH_FASTCALL,
     assign_running_doc},
    {"assign_at", (PyCFunction)(void (*)(void))plan_assign_at, METH_FASTCALL, assign_at_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "verdict.evaluation._native.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_dealloc = (destructor)plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)plan_traverse,
    .tp_clear = (inquiry)plan_clear,
    .tp_free = PyObject_GC_Del,
    .tp_doc = "Compiled experiments of one Evaluator (see engine.py).",
    .tp_methods = plan_methods,
    .tp_new = plan_new,
};

static PyMethodDef module_methods[] = {
    {"hash_ascii", native_hash_ascii, METH_VARARGS, hash_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled accelerator of the assignment engine.", -1,
    module_methods,
};

/* Adds `list` (NULL-terminated) to the module as a tuple of str. */
static int add_names(PyObject *m, const char *attribute, const char *const *list) {
    Py_ssize_t n = 0;
    while (list[n]) n++;
    PyObject *out = PyTuple_New(n);
    if (!out) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyUnicode_FromString(list[i]);
        if (!name) {
            Py_DECREF(out);
            return -1;
        }
        PyTuple_SET_ITEM(out, i, name);
    }
    int rc = PyModule_AddObjectRef(m, attribute, out);
    Py_DECREF(out);
    return rc;
}

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&PlanType) < 0 || PyType_Ready(&ProgramType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0 ||
        PyModule_AddObjectRef(m, "Program", (PyObject *)&ProgramType) < 0 ||
        add_names(m, "RECORD_FIELDS", RECORD_FIELDS) < 0 ||
        add_names(m, "ASSIGNMENT_FIELDS", ASSIGNMENT_FIELDS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
