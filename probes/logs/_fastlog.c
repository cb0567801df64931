/* The work a signal log line pays most for, in C (probes/logs/fastlog.py loads it; the Python
 * in lazy.py, parsers.py, classify.py, attribute.py and model.py is the reference and the
 * fallback, and tests/logs/test_fastlog.py proves both give the same answers).
 *
 * candidate_lines(data, needles[, decode]): lazy.candidate_lines for a file's block
 *   (lazy.CANDIDATE_PATTERN: the lines holding a needle, or starting with a date and holding
 *   `error` after it) in one pass that also counts the lines: ([(line, start, end), ...],
 *   number of newlines); with decode, (line, start, end, data[start:end].decode("utf-8",
 *   "replace")) for each.
 * split_syslog(line): parsers._SYSLOG.match(line).groups(), or None.
 * kernel_head(msg): parsers.kernel_head: the [uptime] prefix and the kernel audit header.
 * first_needle(msg, needles): classify.first_needle: the first needle the message contains.
 * audit_pairs(msg, keys, hexkeys): parsers.audit_fields' key=value pairs (before `perms`), i.e.
 *   re.findall(r'\b(\w++)=("[^"\\]*+(?:\\.[^"\\]*+)*+"|\S++)', msg) filtered by `keys`, the
 *   first of a repeated key kept, a quoted value unquoted, a hex value of a `hexkeys` key decoded.
 * shared_fields(fields, memo, want_pid): parsers.shared_fields: the memo's pairs and the pid.
 * key_tokens(text, keys[, filter]): the tokens of
 *   re.findall(r"[A-Za-z0-9_\\-]++(?:[.:][A-Za-z0-9_\\-]++)*+", text) that are keys of the
 *   dict `keys`, in order (attribute.Attributor._tokens; the filter: attribute.token_filter).
 * event_class(cls, attribution, seq), new_event(*values), set_attribution(e, *values),
 *   place_entries(found, items, first): model.new_event, model.set_attribution and
 *   ring.Ring.append_chunk's loop for the registered class (model.LogEvent).
 *
 * Character classes are the re module's for str patterns (\w: Py_UNICODE_ISALNUM or '_';
 * \s: Py_UNICODE_ISSPACE; \d: Py_UNICODE_ISDECIMAL; '.': anything but '\n'). Every index is
 * checked against the length; memory only through the Python API. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define CH(i) PyUnicode_READ(kind, data, (i))

/* The helpers take their arguments as METH_FASTCALL (no tuple of arguments made, no format
 * parsed per call: each is called once or more per signal line). These check them as
 * PyArg_ParseTuple's "U" and "O!" do. */
static int nargs_ok(const char *name, Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max) {
    if (nargs >= min && nargs <= max)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd to %zd arguments (%zd given)", name, min, max, nargs);
    return 0;
}

static int arg_ok(const char *name, PyObject *const *args, Py_ssize_t i, PyTypeObject *type) {
    if (!PyObject_TypeCheck(args[i], type)) {
        PyErr_Format(PyExc_TypeError, "%s() argument %zd must be %s, not %.50s", name, i + 1, type->tp_name,
                     Py_TYPE(args[i])->tp_name);
        return 0;
    }
    return type != &PyUnicode_Type || PyUnicode_READY(args[i]) == 0;
}

/* (a, b, c) of three numbers */
static PyObject *tuple_n3(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) {
    PyObject *t = PyTuple_New(3);
    if (t == NULL)
        return NULL;
    Py_ssize_t v[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        PyObject *x = PyLong_FromSsize_t(v[i]);
        if (x == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, x);
    }
    return t;
}

/* (n, o), o borrowed */
static PyObject *tuple_no(Py_ssize_t n, PyObject *o) {
    PyObject *x = PyLong_FromSsize_t(n);
    if (x == NULL)
        return NULL;
    PyObject *t = PyTuple_Pack(2, x, o);
    Py_DECREF(x);
    return t;
}

/* \w: ASCII by a range test (the same answer as Py_UNICODE_ISALNUM, which asks four tables) */
static int is_word(Py_UCS4 c) {
    if (c < 128)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    return Py_UNICODE_ISALNUM(c);
}

static int is_hex_upper(Py_UCS4 c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

static int hexval(Py_UCS4 c) { return c <= '9' ? (int)(c - '0') : (int)(c - 'A' + 10); }

/* v = msg[a:b] (b - a >= 2, even, all [0-9A-F]) as bytes, decoded as UTF-8 with replacement */
static PyObject *hex_decode(int kind, const void *data, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = (b - a) / 2;
    char *buf = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++)
        buf[i] = (char)(hexval(CH(a + 2 * i)) * 16 + hexval(CH(a + 2 * i + 1)));
    PyObject *out = PyUnicode_DecodeUTF8(buf, n, "replace");
    PyMem_Free(buf);
    return out;
}

/* The str members of the last `keys` frozenset asked about (a strong reference to it, so the
 * tuple is the set's while it is cached): a word is compared with them in place, no string is
 * made for a word that is no key. */
static PyObject *keys_seen = NULL, *keys_tuple = NULL;

static PyObject *key_list(PyObject *keys) {
    if (keys != keys_seen) {
        PyObject *t = PySequence_Tuple(keys);
        if (t == NULL)
            return NULL;
        Py_INCREF(keys);
        Py_XSETREF(keys_seen, keys);
        Py_XSETREF(keys_tuple, t);
    }
    return keys_tuple;
}

/* the member of `ks` (a tuple) equal to msg[a:b] (borrowed), or NULL */
static PyObject *find_key(PyObject *ks, int kind, const void *data, Py_ssize_t a, Py_ssize_t b) {
    Py_ssize_t n = PyTuple_GET_SIZE(ks);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(ks, i);
        if (!PyUnicode_Check(k) || PyUnicode_GET_LENGTH(k) != b - a)
            continue;
        int kk = PyUnicode_KIND(k);
        const void *kd = PyUnicode_DATA(k);
        if (kk == PyUnicode_1BYTE_KIND && kind == PyUnicode_1BYTE_KIND) {
            if (memcmp(kd, (const Py_UCS1 *)data + a, (size_t)(b - a)) == 0)
                return k;
            continue;
        }
        Py_ssize_t j = 0;
        while (j < b - a && PyUnicode_READ(kk, kd, j) == CH(a + j))
            j++;
        if (j == b - a)
            return k;
    }
    return NULL;
}

/* 1 when the key object k is already in the list of pairs `out` (keys are the set's members) */
static int seen_key(PyObject *out, PyObject *k) {
    Py_ssize_t n = PyList_GET_SIZE(out);
    for (Py_ssize_t i = 0; i < n; i++)
        if (PyTuple_GET_ITEM(PyList_GET_ITEM(out, i), 0) == k)
            return 1;
    return 0;
}

static PyObject *audit_pairs(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("audit_pairs", nargs, 3, 3) || !arg_ok("audit_pairs", args, 0, &PyUnicode_Type) ||
        !arg_ok("audit_pairs", args, 1, &PyFrozenSet_Type) || !arg_ok("audit_pairs", args, 2, &PyFrozenSet_Type))
        return NULL;
    PyObject *msg = args[0], *keys = args[1], *hexkeys = args[2];
    int kind = PyUnicode_KIND(msg);
    const void *data = PyUnicode_DATA(msg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(msg);
    PyObject *ks = key_list(keys);
    if (ks == NULL)
        return NULL;
    Py_INCREF(ks); /* (a hexkeys lookup below may run Python code that asks with another set) */
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        Py_DECREF(ks);
        return NULL;
    }
    Py_ssize_t p = 0;
    while (p < n) {
        /* \b(\w++)= : a word that starts here (not inside a word) and is followed by '=' */
        if (!is_word(CH(p)) || (p > 0 && is_word(CH(p - 1)))) {
            p++;
            continue;
        }
        Py_ssize_t q = p;
        while (q < n && is_word(CH(q)))
            q++;
        if (q >= n || CH(q) != '=') {
            p = q; /* no match starts inside the word */
            continue;
        }
        Py_ssize_t v = q + 1, end = -1;
        int quoted = 0;
        if (v < n && CH(v) == '"') { /* "[^"\\]*+(?:\\.[^"\\]*+)*+" */
            Py_ssize_t i = v + 1;
            while (i < n) {
                Py_UCS4 c = CH(i);
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (i + 1 < n && CH(i + 1) != '\n') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i++;
            }
            if (i < n && CH(i) == '"') {
                end = i + 1;
                quoted = 1;
            }
        }
        if (end < 0) { /* \S++ */
            Py_ssize_t i = v;
            while (i < n && !Py_UNICODE_ISSPACE(CH(i)))
                i++;
            if (i == v) {
                p = q; /* neither: no match at p (nor inside the word) */
                continue;
            }
            end = i;
        }
        PyObject *k = find_key(ks, kind, data, p, q); /* borrowed: ks holds it */
        if (k != NULL && !seen_key(out, k)) {
            PyObject *val;
            Py_ssize_t len = end - v;
            /* a quoted value (or any value between quotes) loses its quotes */
            if (quoted || (len >= 2 && CH(v) == '"' && CH(end - 1) == '"')) {
                val = PyUnicode_Substring(msg, v + 1, end - 1);
            } else {
                int hex = 0;
                if (len >= 2 && len % 2 == 0) {
                    hex = PySet_Contains(hexkeys, k);
                    for (Py_ssize_t i = v; hex == 1 && i < end; i++)
                        hex = is_hex_upper(CH(i));
                }
                if (hex < 0)
                    goto fail;
                val = hex ? hex_decode(kind, data, v, end) : PyUnicode_Substring(msg, v, end);
            }
            if (val == NULL)
                goto fail;
            PyObject *pair = PyTuple_Pack(2, k, val);
            Py_DECREF(val);
            if (pair == NULL || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                goto fail;
            }
            Py_DECREF(pair);
        }
        p = end;
    }
    Py_DECREF(ks);
    return out;
fail:
    Py_DECREF(ks);
    Py_DECREF(out);
    return NULL;
}

static int is_tok(Py_UCS4 c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '\\' || c == '-';
}

/* key_tokens' optional filter (attribute.token_filter): bit (first & 127) << 12 | (last & 127)
 * << 5 | min(length, 31) is set for every key; a token whose bit is clear is no key (a key
 * equal to it has its first and last character and its length): no string is made for it */
#define FILTER_BYTES 65536

static PyObject *key_tokens(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("key_tokens", nargs, 2, 3) || !arg_ok("key_tokens", args, 0, &PyUnicode_Type) ||
        !arg_ok("key_tokens", args, 1, &PyDict_Type) || (nargs > 2 && !arg_ok("key_tokens", args, 2, &PyBytes_Type)))
        return NULL;
    PyObject *text = args[0], *keys = args[1], *filter = nargs > 2 ? args[2] : NULL;
    if (filter != NULL && PyBytes_GET_SIZE(filter) != FILTER_BYTES)
        return PyErr_Format(PyExc_ValueError, "a token filter is %d bytes", FILTER_BYTES);
    const unsigned char *bits = filter != NULL ? (const unsigned char *)PyBytes_AS_STRING(filter) : NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t p = 0;
    while (p < n) {
        if (!is_tok(CH(p))) {
            p++;
            continue;
        }
        Py_ssize_t q = p;
        while (q < n && is_tok(CH(q)))
            q++;
        /* (?:[.:][A-Za-z0-9_\\-]++)*+ */
        while (q + 1 < n && (CH(q) == '.' || CH(q) == ':') && is_tok(CH(q + 1))) {
            q += 1;
            while (q < n && is_tok(CH(q)))
                q++;
        }
        if (bits != NULL) {
            Py_ssize_t len = q - p < 31 ? q - p : 31; /* (a token is ASCII: is_tok) */
            unsigned b = (CH(p) & 127) << 12 | (CH(q - 1) & 127) << 5 | (unsigned)len;
            if (!(bits[b >> 3] & (1 << (b & 7)))) {
                p = q;
                continue;
            }
        }
        PyObject *tok = PyUnicode_Substring(text, p, q);
        if (tok == NULL)
            goto fail;
        PyObject *hit = PyDict_GetItemWithError(keys, tok); /* borrowed */
        if ((hit == NULL && PyErr_Occurred()) || (hit != NULL && PyList_Append(out, tok) < 0)) {
            Py_DECREF(tok);
            goto fail;
        }
        Py_DECREF(tok);
        p = q;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}


/* ------------------------------------------------------------------ candidate lines */

static int is_high(unsigned char c) { return c >= 0x80; }

/* The smallest end of a date at the line's start as lazy._DATE reads bytes: D{4}-D{2}-D{2}
 * with D = [0-9] or 2-4 bytes of [\x80-\xff]; -1 when the line does not start with one.
 * Bit i of a mask: offset i reachable (a date is at most 34 bytes long). */
static Py_ssize_t date_end(const unsigned char *p, Py_ssize_t len) {
    static const int groups[3] = {4, 2, 2};
    uint64_t reach = 1;
    for (int g = 0; g < 3; g++) {
        for (int c = 0; c < groups[g]; c++) {
            uint64_t next = 0;
            for (uint64_t r = reach; r; r &= r - 1) {
                int i = __builtin_ctzll(r); /* (i <= 33: a date is at most 34 bytes) */
                if (i < len && p[i] >= '0' && p[i] <= '9')
                    next |= (uint64_t)1 << (i + 1);
                for (int k = 1; k <= 4 && i + k <= len && is_high(p[i + k - 1]); k++)
                    if (k >= 2)
                        next |= (uint64_t)1 << (i + k);
            }
            if (!(reach = next))
                return -1;
        }
        if (g < 2) {
            uint64_t next = 0;
            for (uint64_t r = reach; r; r &= r - 1) {
                int i = __builtin_ctzll(r);
                if (i < len && p[i] == '-')
                    next |= (uint64_t)1 << (i + 1);
            }
            if (!(reach = next))
                return -1;
        }
    }
    return __builtin_ctzll(reach);
}

static int is_error_at(const unsigned char *p, Py_ssize_t i) { /* [Ee][Rr][Rr][Oo][Rr] at p + i */
    return (p[i] | 0x20) == 'e' && (p[i + 1] | 0x20) == 'r' && (p[i + 2] | 0x20) == 'r' &&
           (p[i + 3] | 0x20) == 'o' && (p[i + 4] | 0x20) == 'r';
}

/* `error` in any case: its 2nd and 3rd bytes are r's, one of them at an even offset */
static int has_error(const unsigned char *p, Py_ssize_t len) {
    for (Py_ssize_t j = 0; j < len; j += 2)
        if ((p[j] | 0x20) == 'r')
            for (Py_ssize_t i = j - 2; i < j; i++)
                if (i >= 0 && i + 5 <= len && is_error_at(p, i))
                    return 1;
    return 0;
}

/* A needle is found by a pair of its bytes looked up at every `stride`-th byte of the line:
 * each needle is entered under `stride` consecutive pairs (at offsets o .. o + stride - 1, the
 * rarest-looking window of stride + 1 bytes), so one of them is at a multiple of the stride
 * wherever the needle is. A needle shorter than the window is looked for by memchr of its
 * rarest-looking byte ("short"). head[two bytes] is 1 + the first entry for that pair, next[e]
 * 1 + the next one (0: none). */
typedef struct {
    Py_ssize_t count;
    int stride; /* 2 or 4 */
    const unsigned char *s[32];
    Py_ssize_t len[32];
    Py_ssize_t nshort;
    unsigned char short_k[32], short_at[32]; /* short needle, its memchr byte's offset */
    unsigned char needle[128];               /* entry -> needle */
    unsigned char shift[128];                /* entry -> the pair's offset in the needle */
    unsigned char next[128];
    unsigned char head[65536];
} Needles;

static int commonness(unsigned char c) {
    return (c >= 'a' && c <= 'z') || c == ' ' ? 2 : (c >= '0' && c <= '9') ? 1 : 0;
}

static void add_needle(Needles *nd, Py_ssize_t k) {
    const unsigned char *n = nd->s[k];
    Py_ssize_t best = 0, w = nd->stride + 1;
    int best_score = 999;
    if (nd->len[k] < w) {
        for (Py_ssize_t o = 0; o < nd->len[k]; o++)
            if (commonness(n[o]) < best_score) {
                best_score = commonness(n[o]);
                best = o;
            }
        nd->short_k[nd->nshort] = (unsigned char)k;
        nd->short_at[nd->nshort++] = (unsigned char)best;
        return;
    }
    for (Py_ssize_t o = 0; o + w <= nd->len[k] && o < 200; o++) {
        int score = 0;
        for (Py_ssize_t i = 0; i < w; i++)
            score += commonness(n[o + i]);
        if (score < best_score) {
            best_score = score;
            best = o;
        }
    }
    for (int d = 0; d < nd->stride; d++) {
        int e = (int)(nd->stride * k + d);
        unsigned key = n[best + d] | (n[best + d + 1] << 8);
        nd->needle[e] = (unsigned char)k;
        nd->shift[e] = (unsigned char)(best + d);
        nd->next[e] = nd->head[key];
        nd->head[key] = (unsigned char)(e + 1);
    }
}

static int has_short(const Needles *nd, const unsigned char *p, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < nd->nshort; i++) {
        Py_ssize_t k = nd->short_k[i], off = nd->short_at[i], n = nd->len[k], from = off;
        unsigned char c = nd->s[k][off];
        /* the byte at `off` of an occurrence starting at 0 .. len - n */
        while (len >= n && from <= len - n + off) {
            const unsigned char *q = memchr(p + from, c, (size_t)(len - n + off - from + 1));
            if (q == NULL)
                break;
            Py_ssize_t start = (q - p) - off;
            if (memcmp(p + start, nd->s[k], (size_t)n) == 0)
                return 1;
            from = (q - p) + 1;
        }
    }
    return 0;
}

static int is_candidate(const Needles *nd, const unsigned char *p, Py_ssize_t len) {
    const int stride = nd->stride;
    for (Py_ssize_t j = 0; j + 1 < len; j += stride) {
        for (int e = nd->head[p[j] | (p[j + 1] << 8)]; e; e = nd->next[e - 1]) {
            Py_ssize_t k = nd->needle[e - 1], start = j - nd->shift[e - 1];
            if (start >= 0 && nd->len[k] <= len - start && memcmp(p + start, nd->s[k], nd->len[k]) == 0)
                return 1;
        }
    }
    if (nd->nshort && has_short(nd, p, len))
        return 1;
    if (len > 0 && ((p[0] >= '0' && p[0] <= '9') || is_high(p[0]))) {
        Py_ssize_t d = date_end(p, len);
        if (d >= 0 && has_error(p + d, len - d))
            return 1;
    }
    return 0;
}

static PyObject *candidate_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("candidate_lines", nargs, 2, 3) || !arg_ok("candidate_lines", args, 0, &PyBytes_Type) ||
        !arg_ok("candidate_lines", args, 1, &PyTuple_Type))
        return NULL;
    PyObject *bytes = args[0], *needles = args[1];
    int decode = nargs > 2 ? PyObject_IsTrue(args[2]) : 0;
    if (decode < 0)
        return NULL;
    Needles *nd = PyMem_Calloc(1, sizeof(Needles));
    if (nd == NULL)
        return PyErr_NoMemory();
    nd->count = PyTuple_GET_SIZE(needles);
    nd->stride = 4;
    if (nd->count > 32) {
        PyMem_Free(nd);
        return PyErr_Format(PyExc_ValueError, "at most 32 needles");
    }
    for (Py_ssize_t k = 0; k < nd->count; k++) {
        PyObject *b = PyTuple_GET_ITEM(needles, k);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) < 3 || memchr(PyBytes_AS_STRING(b), '\n', PyBytes_GET_SIZE(b))) {
            PyMem_Free(nd);
            return PyErr_Format(PyExc_ValueError, "a needle must be bytes of at least 3, without a newline");
        }
        nd->s[k] = (const unsigned char *)PyBytes_AS_STRING(b);
        nd->len[k] = PyBytes_GET_SIZE(b);
        add_needle(nd, k);
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(bytes);
    Py_ssize_t n = PyBytes_GET_SIZE(bytes), pos = 0, line = 0, found = 0, cap = 0;
    Py_ssize_t *spans = NULL; /* line, start, end of each candidate */
    int failed = 0;
    /* the scan reads only the (immutable) bytes and our own tables: other threads (the UI's
     * event loop) run meanwhile; the list is built after */
    Py_BEGIN_ALLOW_THREADS
    while (1) {
        const unsigned char *nl = memchr(data + pos, '\n', (size_t)(n - pos));
        Py_ssize_t end = nl ? nl - data : n;
        if (is_candidate(nd, data + pos, end - pos)) {
            if (found == cap) {
                Py_ssize_t *bigger = NULL;
                cap = cap ? 2 * cap : 1024;
                if ((size_t)cap <= PY_SSIZE_T_MAX / (3 * sizeof(Py_ssize_t)))
                    bigger = PyMem_RawRealloc(spans, (size_t)cap * 3 * sizeof(Py_ssize_t));
                if (bigger == NULL) {
                    failed = 1;
                    break;
                }
                spans = bigger;
            }
            spans[3 * found] = line;
            spans[3 * found + 1] = pos;
            spans[3 * found + 2] = end;
            found++;
        }
        if (nl == NULL)
            break;
        line++;
        pos = end + 1;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(nd);
    if (failed) {
        PyMem_RawFree(spans);
        return PyErr_NoMemory();
    }
    PyObject *out = PyList_New(found);
    for (Py_ssize_t k = 0; out != NULL && k < found; k++) {
        Py_ssize_t a = spans[3 * k + 1], b = spans[3 * k + 2];
        PyObject *t = tuple_n3(spans[3 * k], a, b);
        if (t != NULL && decode) { /* + the line as data[a:b].decode("utf-8", "replace") */
            PyObject *text = PyUnicode_DecodeUTF8((const char *)data + a, b - a, "replace");
            PyObject *t4 = text ? PyTuple_Pack(4, PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1),
                                               PyTuple_GET_ITEM(t, 2), text)
                                : NULL;
            Py_XDECREF(text);
            Py_SETREF(t, t4);
        }
        if (t == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, k, t);
    }
    PyMem_RawFree(spans);
    return out == NULL ? NULL : Py_BuildValue("(Nn)", out, line);
}

/* ------------------------------------------------------------------ classification */

/* The needles of the last first_needle call, as the candidate scan's pair table (their
 * Latin-1 bytes: a one-byte str's characters are those bytes); NULL when one of them is not
 * Latin-1, shorter than 3 or past 32 needles (then PyUnicode_Contains, needle by needle). */
static PyObject *needles_seen = NULL, *needles_bytes = NULL;
static Needles *needles_table = NULL;

static int needle_table(PyObject *needles) {
    if (needles == needles_seen)
        return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(needles);
    PyObject *bytes = PyTuple_New(n);
    Needles *nd = NULL;
    if (bytes == NULL)
        return -1;
    int usable = n <= 32;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *s = PyTuple_GET_ITEM(needles, k), *b = NULL;
        if (!PyUnicode_Check(s)) {
            Py_DECREF(bytes);
            PyErr_SetString(PyExc_TypeError, "needles must be str");
            return -1;
        }
        if (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND && PyUnicode_GET_LENGTH(s) >= 3)
            b = PyBytes_FromStringAndSize((const char *)PyUnicode_1BYTE_DATA(s), PyUnicode_GET_LENGTH(s));
        else {
            usable = 0;
            b = PyBytes_FromStringAndSize(NULL, 0);
        }
        if (b == NULL) {
            Py_DECREF(bytes);
            return -1;
        }
        PyTuple_SET_ITEM(bytes, k, b);
    }
    if (usable) {
        nd = PyMem_Calloc(1, sizeof(Needles));
        if (nd == NULL) {
            Py_DECREF(bytes);
            PyErr_NoMemory();
            return -1;
        }
        nd->count = n;
        nd->stride = 2; /* (every needle at least 3 bytes: no short one) */
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *b = PyTuple_GET_ITEM(bytes, k);
            nd->s[k] = (const unsigned char *)PyBytes_AS_STRING(b);
            nd->len[k] = PyBytes_GET_SIZE(b);
            add_needle(nd, k);
        }
    }
    PyMem_Free(needles_table);
    needles_table = nd;
    Py_INCREF(needles);
    Py_XSETREF(needles_seen, needles);
    Py_XSETREF(needles_bytes, bytes);
    return 0;
}

/* the smallest k of the needles found in p[:len] (every occurrence of a needle has one of its
 * two entries' pairs at an even offset), -1 when none */
static Py_ssize_t min_needle(const Needles *nd, const unsigned char *p, Py_ssize_t len) {
    Py_ssize_t best = -1;
    for (Py_ssize_t j = 0; j + 1 < len; j += 2) {
        for (int e = nd->head[p[j] | (p[j + 1] << 8)]; e; e = nd->next[e - 1]) {
            Py_ssize_t k = nd->needle[e - 1], start = j - nd->shift[e - 1];
            if ((best < 0 || k < best) && start >= 0 && nd->len[k] <= len - start &&
                memcmp(p + start, nd->s[k], nd->len[k]) == 0) {
                best = k;
                if (best == 0)
                    return 0;
            }
        }
    }
    return best;
}

/* classify.first_needle: the index of the first of `needles` (a tuple of str) that `msg`
 * contains (as `in` finds it), -1 when none */
static PyObject *first_needle(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("first_needle", nargs, 2, 2) || !arg_ok("first_needle", args, 0, &PyUnicode_Type) ||
        !arg_ok("first_needle", args, 1, &PyTuple_Type))
        return NULL;
    PyObject *msg = args[0], *needles = args[1];
    if (needle_table(needles) < 0)
        return NULL;
    if (needles_table != NULL && PyUnicode_KIND(msg) == PyUnicode_1BYTE_KIND)
        return PyLong_FromSsize_t(min_needle(needles_table, PyUnicode_1BYTE_DATA(msg), PyUnicode_GET_LENGTH(msg)));
    Py_ssize_t n = PyTuple_GET_SIZE(needles);
    for (Py_ssize_t k = 0; k < n; k++) {
        int in = PyUnicode_Contains(msg, PyTuple_GET_ITEM(needles, k));
        if (in < 0)
            return NULL;
        if (in)
            return PyLong_FromSsize_t(k);
    }
    return PyLong_FromLong(-1);
}

/* ------------------------------------------------------------------ syslog header */

static int is_dec(Py_UCS4 c) { return c < 128 ? c >= '0' && c <= '9' : Py_UNICODE_ISDECIMAL(c); }

/* parsers._SYSLOG.match(line).groups(), or None when it does not match:
 * (ts) " " (host: \S+) " " (prog: [^\s:\[]+) ("[" (pid: \d+) "]")? ":" " "? (msg: the rest)
 * ts: [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d  or
 *     \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?
 * (every part can end one way only: what a shorter repeat leaves cannot be what must follow) */
static PyObject *split_syslog(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("split_syslog", nargs, 1, 1) || !arg_ok("split_syslog", args, 0, &PyUnicode_Type))
        return NULL;
    PyObject *line = args[0];
    int kind = PyUnicode_KIND(line);
    const void *data = PyUnicode_DATA(line);
    Py_ssize_t n = PyUnicode_GET_LENGTH(line), i;
#define AT(j) ((j) < n ? CH(j) : (Py_UCS4)0xFFFFFFFF)
#define DEC(j) ((j) < n && is_dec(CH(j)))
    Py_UCS4 c0 = AT(0);
    if (c0 >= 'A' && c0 <= 'Z') {
        if (!(n >= 15 && AT(1) >= 'a' && AT(1) <= 'z' && AT(2) >= 'a' && AT(2) <= 'z' && AT(3) == ' ' &&
              (AT(4) == ' ' || DEC(4)) && DEC(5) && AT(6) == ' ' && DEC(7) && DEC(8) && AT(9) == ':' &&
              DEC(10) && DEC(11) && AT(12) == ':' && DEC(13) && DEC(14)))
            Py_RETURN_NONE;
        i = 15;
    } else {
        static const char shape[] = "dddd-dd-ddTdd:dd:dd";
        for (i = 0; i < 19; i++)
            if (shape[i] == 'd' ? !DEC(i) : AT(i) != (Py_UCS4)shape[i])
                Py_RETURN_NONE;
        if (AT(i) == '.' && DEC(i + 1)) {
            i += 2;
            while (DEC(i))
                i++;
        }
        if (AT(i) == 'Z')
            i++;
        else if ((AT(i) == '+' || AT(i) == '-') && DEC(i + 1) && DEC(i + 2)) {
            Py_ssize_t j = i + 3 + (AT(i + 3) == ':');
            if (DEC(j) && DEC(j + 1))
                i = j + 2;
        }
    }
    Py_ssize_t ts_end = i;
    if (AT(i) != ' ')
        Py_RETURN_NONE;
    Py_ssize_t host = ++i;
    while (i < n && !Py_UNICODE_ISSPACE(CH(i)))
        i++;
    if (i == host || AT(i) != ' ')
        Py_RETURN_NONE;
    Py_ssize_t host_end = i, prog = ++i;
    while (i < n && !Py_UNICODE_ISSPACE(CH(i)) && CH(i) != ':' && CH(i) != '[')
        i++;
    if (i == prog)
        Py_RETURN_NONE;
    Py_ssize_t prog_end = i, pid = -1, pid_end = -1;
    if (AT(i) == '[') {
        Py_ssize_t j = i + 1;
        while (DEC(j))
            j++;
        if (j == i + 1 || AT(j) != ']')
            Py_RETURN_NONE;
        pid = i + 1;
        pid_end = j;
        i = j + 1;
    }
    if (AT(i) != ':')
        Py_RETURN_NONE;
    i++;
    if (AT(i) == ' ')
        i++;
#undef AT
#undef DEC
    PyObject *parts[5] = {PyUnicode_Substring(line, 0, ts_end), PyUnicode_Substring(line, host, host_end),
                          PyUnicode_Substring(line, prog, prog_end),
                          pid >= 0 ? PyUnicode_Substring(line, pid, pid_end) : Py_NewRef(Py_None),
                          PyUnicode_Substring(line, i, n)};
    PyObject *out = NULL;
    if (parts[0] && parts[1] && parts[2] && parts[3] && parts[4])
        out = PyTuple_Pack(5, parts[0], parts[1], parts[2], parts[3], parts[4]);
    for (int k = 0; k < 5; k++)
        Py_XDECREF(parts[k]);
    return out;
}

/* ------------------------------------------------------------------ kernel message head */

/* parsers.kernel_head: (pos, audit) of a kernel message, where pos is past its "[uptime] "
 * prefix ("] " within the first 20 characters of a message starting with "["), and audit the
 * groups (ts, type, inner) of parsers._KERNEL_AUDIT matched at pos
 *   audit: type=(\d+) audit\((\d+(?:\.\d+)?):\d+\): ?(.*)      (re.S)
 * or None when it does not match (every part can end one way only). */
static PyObject *kernel_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("kernel_head", nargs, 1, 1) || !arg_ok("kernel_head", args, 0, &PyUnicode_Type))
        return NULL;
    PyObject *msg = args[0];
    int kind = PyUnicode_KIND(msg);
    const void *data = PyUnicode_DATA(msg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(msg), pos = 0;
#define AT(j) ((j) < n ? CH(j) : (Py_UCS4)0xFFFFFFFF)
#define DEC(j) ((j) < n && is_dec(CH(j)))
    if (AT(0) == '[') {
        for (Py_ssize_t i = 0; i + 2 <= 20 && i + 1 < n; i++)
            if (CH(i) == ']' && CH(i + 1) == ' ') {
                pos = i + 2;
                break;
            }
    }
    static const char head[] = "audit: type=";
    Py_ssize_t i = pos, typ, typ_end, ts, ts_end;
    for (int k = 0; head[k]; k++, i++)
        if (AT(i) != (Py_UCS4)head[k])
            goto plain;
    typ = i;
    while (DEC(i))
        i++;
    if (i == typ)
        goto plain;
    typ_end = i;
    static const char mid[] = " audit(";
    for (int k = 0; mid[k]; k++, i++)
        if (AT(i) != (Py_UCS4)mid[k])
            goto plain;
    ts = i;
    while (DEC(i))
        i++;
    if (i == ts)
        goto plain;
    if (AT(i) == '.' && DEC(i + 1)) {
        i += 2;
        while (DEC(i))
            i++;
    }
    ts_end = i;
    if (AT(i) != ':' || !DEC(i + 1))
        goto plain;
    i += 2;
    while (DEC(i))
        i++;
    if (AT(i) != ')' || AT(i + 1) != ':')
        goto plain;
    i += 2;
    if (AT(i) == ' ')
        i++;
#undef AT
#undef DEC
    {
        PyObject *t = PyUnicode_Substring(msg, ts, ts_end), *y = PyUnicode_Substring(msg, typ, typ_end),
                 *m = PyUnicode_Substring(msg, i, n);
        PyObject *audit = t && y && m ? PyTuple_Pack(3, t, y, m) : NULL;
        Py_XDECREF(t);
        Py_XDECREF(y);
        Py_XDECREF(m);
        PyObject *out = audit ? tuple_no(pos, audit) : NULL;
        Py_XDECREF(audit);
        return out;
    }
plain:
    return tuple_no(pos, Py_None);
}

/* ------------------------------------------------------------------ signal fields */

/* parsers.shared_fields(fields, memo, want_pid): (the pairs as memo.setdefault(pair, pair)
 * gives them, in a tuple; when want_pid, int(v) of the first ("pid", v) whose v.isdigit(),
 * else 0) */
static PyObject *shared_fields(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("shared_fields", nargs, 3, 3) || !arg_ok("shared_fields", args, 0, &PyTuple_Type) ||
        !arg_ok("shared_fields", args, 1, &PyDict_Type))
        return NULL;
    PyObject *fields = args[0], *memo = args[1];
    int want_pid = PyObject_IsTrue(args[2]);
    if (want_pid < 0)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(fields);
    PyObject *out = PyTuple_New(n), *pid = NULL;
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(fields, i);
        PyObject *shared = PyDict_SetDefault(memo, pair, pair); /* borrowed */
        if (shared == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, i, Py_NewRef(shared));
    }
    for (Py_ssize_t i = 0; want_pid && pid == NULL && i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(out, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a field is a (key, value) pair");
            goto fail;
        }
        PyObject *k = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(k) || !PyUnicode_CheckExact(v)) {
            PyErr_SetString(PyExc_TypeError, "a field is a pair of str");
            goto fail;
        }
        if (PyUnicode_CompareWithASCIIString(k, "pid") != 0)
            continue;
        /* str.isdigit: not empty, every character a digit */
        int kind = PyUnicode_KIND(v);
        const void *data = PyUnicode_DATA(v);
        Py_ssize_t m = PyUnicode_GET_LENGTH(v), j = 0;
        while (j < m && Py_UNICODE_ISDIGIT(CH(j)))
            j++;
        if (m > 0 && j == m && (pid = PyLong_FromUnicodeObject(v, 10)) == NULL)
            goto fail;
    }
    if (pid == NULL)
        pid = PyLong_FromLong(0);
    if (pid == NULL)
        goto fail;
    PyObject *both = PyTuple_Pack(2, out, pid);
    Py_DECREF(out);
    Py_DECREF(pid);
    return both;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ entries */

/* The entry class (model.LogEvent: a frozen dataclass with __slots__) as event_class(cls,
 * attribution) registered it: its slots' member definitions in __slots__ order, and those of
 * the attribution's slots. new_event and set_attribution store into the slots as the member
 * descriptors' __set__ does (PyMember_SetOne), past the frozen __setattr__ (model.new_event and
 * model.set_attribution do the same in Python). */
#define MAX_SLOTS 32
static PyTypeObject *event_type = NULL;
static PyObject *event_descrs = NULL; /* the member descriptors: they own the definitions */
static PyMemberDef *event_members[MAX_SLOTS];
static Py_ssize_t event_nslots = 0;
static PyMemberDef *attribution_members[MAX_SLOTS];
static Py_ssize_t attribution_n = 0;
static PyMemberDef *seq_member = NULL;

static PyMemberDef *object_slot(PyTypeObject *cls, PyObject *name, PyObject *keep) {
    PyObject *d = PyDict_GetItemWithError(cls->tp_dict, name); /* borrowed */
    if (d == NULL) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "%R is no slot of %R", name, cls);
        return NULL;
    }
    if (!PyObject_TypeCheck(d, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_ValueError, "%R of %R is not a slot", name, cls);
        return NULL;
    }
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & READONLY) || ((PyMemberDescrObject *)d)->d_common.d_type != cls) {
        PyErr_Format(PyExc_ValueError, "%R of %R is not a writable object slot of its own", name, cls);
        return NULL;
    }
    if (PyList_Append(keep, d) < 0)
        return NULL;
    return m;
}

static PyObject *event_class(PyObject *self, PyObject *args) {
    PyObject *cls, *attribution, *seq_name;
    if (!PyArg_ParseTuple(args, "O!O!U", &PyType_Type, &cls, &PyTuple_Type, &attribution, &seq_name))
        return NULL;
    PyTypeObject *t = (PyTypeObject *)cls;
    PyObject *slots = PyObject_GetAttrString(cls, "__slots__");
    if (slots == NULL)
        return NULL;
    PyObject *keep = PyList_New(0), *seq = keep ? PySequence_Tuple(slots) : NULL;
    Py_DECREF(slots);
    if (seq == NULL) {
        Py_XDECREF(keep);
        return NULL;
    }
    PyMemberDef *members[MAX_SLOTS], *attr[MAX_SLOTS];
    Py_ssize_t n = PyTuple_GET_SIZE(seq), na = PyTuple_GET_SIZE(attribution);
    if (n > MAX_SLOTS || na > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "at most %d slots", MAX_SLOTS);
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if ((members[i] = object_slot(t, PyTuple_GET_ITEM(seq, i), keep)) == NULL)
            goto fail;
    for (Py_ssize_t i = 0; i < na; i++)
        if ((attr[i] = object_slot(t, PyTuple_GET_ITEM(attribution, i), keep)) == NULL)
            goto fail;
    PyMemberDef *seq_slot = object_slot(t, seq_name, keep);
    if (seq_slot == NULL)
        goto fail;
    Py_DECREF(seq);
    Py_INCREF(cls);
    Py_XSETREF(event_type, t);
    Py_XSETREF(event_descrs, keep);
    memcpy(event_members, members, sizeof(members));
    memcpy(attribution_members, attr, sizeof(attr));
    event_nslots = n;
    attribution_n = na;
    seq_member = seq_slot;
    Py_RETURN_NONE;
fail:
    Py_DECREF(seq);
    Py_DECREF(keep);
    return NULL;
}

/* model.new_event(*values): an entry of the registered class, every slot set in order */
static PyObject *new_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (event_type == NULL || nargs != event_nslots)
        return PyErr_Format(PyExc_TypeError, "new_event takes the %zd values of the registered class",
                            event_nslots);
    PyObject *e = event_type->tp_alloc(event_type, 0);
    if (e == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++)
        if (PyMember_SetOne((char *)e, event_members[i], args[i]) < 0) {
            Py_DECREF(e);
            return NULL;
        }
    return e;
}

/* model.set_attribution(e, *values): the attribution's slots of an entry of the registered
 * class (one nobody else holds yet) set; returns e */
static PyObject *set_attribution(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (event_type == NULL || nargs != attribution_n + 1 || Py_TYPE(args[0]) != event_type)
        return PyErr_Format(PyExc_TypeError, "set_attribution takes an entry of the registered class and %zd values",
                            attribution_n);
    for (Py_ssize_t i = 0; i < attribution_n; i++)
        if (PyMember_SetOne((char *)args[0], attribution_members[i], args[i + 1]) < 0)
            return NULL;
    return Py_NewRef(args[0]);
}

/* ring.Ring.append_chunk's loop: for i, e in found.items() (insertion order): e's seq slot set
 * to first + i (an entry of the registered class, fresh from ingest), items[i] = e (a negative
 * i from the end, as list assignment reads it); the entries in a new list */
static PyObject *place_entries(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!nargs_ok("place_entries", nargs, 3, 3) || !arg_ok("place_entries", args, 0, &PyDict_Type) ||
        !arg_ok("place_entries", args, 1, &PyList_Type) || !arg_ok("place_entries", args, 2, &PyLong_Type))
        return NULL;
    PyObject *found = args[0], *items = args[1];
    if (event_type == NULL || seq_member == NULL)
        return PyErr_Format(PyExc_TypeError, "no entry class registered");
    Py_ssize_t first = PyLong_AsSsize_t(args[2]); /* (numbers read in C: no Python code runs here) */
    if (first == -1 && PyErr_Occurred())
        return NULL;
    PyObject *out = PyList_New(0), *key, *e;
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    while (PyDict_Next(found, &pos, &key, &e)) { /* (borrowed) */
        if (Py_TYPE(e) != event_type) {
            PyErr_Format(PyExc_TypeError, "place_entries: %.50s is no entry", Py_TYPE(e)->tp_name);
            goto fail;
        }
        if (!PyLong_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "place_entries: a line number is an int");
            goto fail;
        }
        Py_ssize_t i = PyLong_AsSsize_t(key), n = PyList_GET_SIZE(items);
        if (i == -1 && PyErr_Occurred())
            goto fail;
        if ((i > 0 && first > PY_SSIZE_T_MAX - i) || (i < 0 && first < PY_SSIZE_T_MIN - i)) {
            PyErr_SetString(PyExc_OverflowError, "place_entries: seq out of range");
            goto fail;
        }
        PyObject *seq = PyLong_FromSsize_t(first + i);
        if (seq == NULL)
            goto fail;
        int bad = PyMember_SetOne((char *)e, seq_member, seq);
        Py_DECREF(seq);
        if (bad < 0)
            goto fail;
        if (i < 0)
            i += n;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
            goto fail;
        }
        if (PyList_SetItem(items, i, Py_NewRef(e)) < 0 || PyList_Append(out, e) < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"audit_pairs", (PyCFunction)(void (*)(void))audit_pairs, METH_FASTCALL, "audit key=value pairs (see the module's source)"},
    {"candidate_lines", (PyCFunction)(void (*)(void))candidate_lines, METH_FASTCALL, "a file block's candidate lines and its line count"},
    {"split_syslog", (PyCFunction)(void (*)(void))split_syslog, METH_FASTCALL, "parsers._SYSLOG.match(line).groups() or None"},
    {"kernel_head", (PyCFunction)(void (*)(void))kernel_head, METH_FASTCALL, "parsers.kernel_head(msg): uptime prefix and kernel audit header"},
    {"event_class", event_class, METH_VARARGS, "event_class(cls, attribution): the entry class new_event builds"},
    {"new_event", (PyCFunction)(void (*)(void))new_event, METH_FASTCALL, "model.new_event(*values)"},
    {"set_attribution", (PyCFunction)(void (*)(void))set_attribution, METH_FASTCALL,
     "model.set_attribution(e, *values)"},
    {"place_entries", (PyCFunction)(void (*)(void))place_entries, METH_FASTCALL,
     "ring.Ring.append_chunk: found entries numbered and placed"},
    {"shared_fields", (PyCFunction)(void (*)(void))shared_fields, METH_FASTCALL, "parsers.shared_fields(fields, memo, want_pid)"},
    {"first_needle", (PyCFunction)(void (*)(void))first_needle, METH_FASTCALL, "classify.first_needle(msg, needles)"},
    {"key_tokens", (PyCFunction)(void (*)(void))key_tokens, METH_FASTCALL, "tokens of text that are keys of a dict, in order"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "probes.logs._fastlog", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastlog(void) { return PyModule_Create(&module); }
