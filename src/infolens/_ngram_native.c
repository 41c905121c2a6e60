/* Compiled core of the built-in byte-level language model (infolens.models.ngram).
 *
 * Model: interpolated modified Kneser-Ney over byte contexts of order 0..K (K <= 8; a
 * context of order k is the previous k bytes packed into a uint64, so contexts are exact
 * keys, never hashed approximately), with adaptive Chen-Goodman discounts per order,
 * KN continuation counts through update exclusion, an order -1 uniform prior, and a match
 * model whose prediction is merged through an adaptive secondary estimate (SSE).
 * See docs/ngram.md for the formulas; tests/test_ngram.py holds a plain Python reference.
 *
 * Memory is bounded: the context table and the symbol slab grow by doubling up to fixed
 * caps; when a cap would be exceeded the statistics are cleared (a "restart", as in PPMd).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#define MAXORD 8
#define EMPTY 0xFF
#define NPB 12 /* probability buckets of the SSE */
#define NLB 16 /* match-length buckets of the SSE */

/* What a prediction leaves for the update of the same position (learn_pos). */
typedef struct {
    int64_t nidx[MAXORD + 1];
    uint64_t h;
    int avail, predicted, lb, pb;
} Pending;

typedef struct {
    uint64_t ctx;
    uint32_t total;
    uint32_t off;
    uint16_t nsym;
    uint16_t n1;
    uint16_t n2;
    uint8_t order;
    uint8_t caplog;
} Node;

typedef struct {
    PyObject_HEAD
    int order;
    int match_min;
    int use_match;
    /* context table */
    Node *nodes;
    uint64_t cap;     /* power of two */
    uint64_t count;
    uint64_t max_cap;
    /* symbol slab */
    uint8_t *sym;
    uint32_t *cnt;
    uint64_t slab_cap, slab_used, slab_max;
    int64_t freelist[9];
    /* count-of-counts per order: cc[k][r] for r = 1..4 */
    double cc[MAXORD + 1][5];
    /* SSE of the match model */
    double sse_hit[NLB][NPB];
    double sse_tot[NLB][NPB];
    /* match model (per document) */
    uint32_t *mtab;
    int mbits;
    int64_t mptr, mlen;
    uint64_t restarts;
    /* predict() .. learn(): the prediction of the position being decoded (-1: none) */
    int64_t pend_i;
    int pend_update;
    Pending pend;
    double pend_p[256];
    float pend_w[256];
    double qbits; /* -log2 of the quantised probabilities of the learned symbols */
} Model;

static const double PB_EDGES[NPB - 1] = {1.0 / 256, 1.0 / 64, 1.0 / 16, 1.0 / 8, 0.25, 0.5,
                                         0.75, 0.875, 0.9375, 0.96875, 0.984375};
#define SSE_PRIOR 2.0
#define SSE_LIMIT 255.0
/* A context's count total never passes this: it stops learning there instead of wrapping
 * its uint32 counts (a fitted or loaded model can then keep adapting safely). */
#define COUNT_LIMIT 0x7FFFFFFFu
#define MATCH_MAXBACK 64

static inline int pbucket(double p) {
    int b = 0;
    for (int i = 0; i < NPB - 1; i++) b += (p > PB_EDGES[i]);
    return b;
}
static inline int lbucket(int64_t len) {
    int64_t b = len >> 1;
    return (int)(b > NLB - 1 ? NLB - 1 : b);
}

/* natural log, accurate to ~1 ulp for normal positive doubles */
static inline double fast_log(double x) {
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int64_t e = (int64_t)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
    double m;
    memcpy(&m, &bits, 8);
    int big = m > 1.4142135623730951;
    m = big ? m * 0.5 : m;
    e += big;
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double poly =
        1.0 / 21 + s2 * (1.0 / 23);
    poly = 1.0 / 19 + s2 * poly;
    poly = 1.0 / 17 + s2 * poly;
    poly = 1.0 / 15 + s2 * poly;
    poly = 1.0 / 13 + s2 * poly;
    poly = 1.0 / 11 + s2 * poly;
    poly = 1.0 / 9 + s2 * poly;
    poly = 1.0 / 7 + s2 * poly;
    poly = 1.0 / 5 + s2 * poly;
    poly = 1.0 / 3 + s2 * poly;
    double lm = 2.0 * s + 2.0 * s * s2 * poly;
    return (double)e * 6.93147180369123816490e-01 + ((double)e * 1.90821492927058770002e-10 + lm);
}

static inline uint64_t hash_key(uint64_t ctx, int order) {
    uint64_t h = (ctx + (uint64_t)order * 0x9E3779B97F4A7C15ULL) * 0xD6E8FEB86659FD93ULL;
    return h ^ (h >> 29);
}

static int64_t find_node(Model *m, int order, uint64_t ctx) {
    uint64_t mask = m->cap - 1, i = hash_key(ctx, order) & mask;
    for (;;) {
        Node *n = &m->nodes[i];
        if (n->order == EMPTY) return -1 - (int64_t)i;
        if (n->order == order && n->ctx == ctx) return (int64_t)i;
        i = (i + 1) & mask;
    }
}

static int alloc_tables(Model *m, uint64_t cap) {
    m->nodes = (Node *)malloc(cap * sizeof(Node));
    if (!m->nodes) return -1;
    for (uint64_t i = 0; i < cap; i++) m->nodes[i].order = EMPTY;
    m->cap = cap;
    m->count = 0;
    return 0;
}

static void clear_stats(Model *m) {
    free(m->nodes);
    m->nodes = NULL;
    alloc_tables(m, 1 << 12);
    m->slab_used = 0;
    for (int i = 0; i < 9; i++) m->freelist[i] = -1;
    memset(m->cc, 0, sizeof(m->cc));
}

static int grow_table(Model *m) {
    Node *old = m->nodes;
    uint64_t oldcap = m->cap;
    if (alloc_tables(m, oldcap * 2) < 0) {
        m->nodes = old;
        m->cap = oldcap;
        return -1;
    }
    for (uint64_t i = 0; i < oldcap; i++) {
        if (old[i].order == EMPTY) continue;
        int64_t j = find_node(m, old[i].order, old[i].ctx);
        m->nodes[-1 - j] = old[i];
        m->count++;
    }
    free(old);
    return 0;
}

static int64_t slab_alloc(Model *m, int caplog) {
    if (m->freelist[caplog] >= 0) {
        int64_t off = m->freelist[caplog];
        m->freelist[caplog] = (int64_t)m->cnt[off] - 1;
        return off;
    }
    uint64_t need = (uint64_t)1 << caplog;
    if (m->slab_used + need > m->slab_cap) {
        uint64_t nc = m->slab_cap ? m->slab_cap : (1 << 14);
        while (nc < m->slab_used + need) nc *= 2;
        if (nc > m->slab_max) return -1;
        uint8_t *s = (uint8_t *)realloc(m->sym, nc);
        if (!s) return -1;
        m->sym = s;
        uint32_t *c = (uint32_t *)realloc(m->cnt, nc * sizeof(uint32_t));
        if (!c) return -1;
        m->cnt = c;
        m->slab_cap = nc;
    }
    int64_t off = (int64_t)m->slab_used;
    m->slab_used += need;
    return off;
}

static void slab_free(Model *m, int64_t off, int caplog) {
    m->cnt[off] = (uint32_t)(m->freelist[caplog] + 1);
    m->freelist[caplog] = off;
}

/* Make room for one byte's worth of updates; restart if the caps would be exceeded. */
static int ensure_room(Model *m) {
    uint64_t k1 = (uint64_t)m->order + 1;
    while ((m->count + k1) * 2 > m->cap) {
        if (m->cap * 2 > m->max_cap || grow_table(m) < 0) {
            clear_stats(m);
            m->restarts++;
            break;
        }
    }
    if (m->slab_used + k1 * 256 > m->slab_max) {
        clear_stats(m);
        m->restarts++;
    }
    return 0;
}

/* add symbol x to node n with count 1 (x absent); returns 0 or -1 on slab exhaustion */
static int node_add(Model *m, Node *n, uint8_t x) {
    if (n->nsym == 0 || n->nsym == (1u << n->caplog)) {
        int newlog = n->nsym == 0 ? 0 : n->caplog + 1;
        int64_t off = slab_alloc(m, newlog);
        if (off < 0) return -1;
        if (n->nsym) {
            memcpy(m->sym + off, m->sym + n->off, n->nsym);
            memcpy(m->cnt + off, m->cnt + n->off, n->nsym * sizeof(uint32_t));
            slab_free(m, n->off, n->caplog);
        }
        n->off = (uint32_t)off;
        n->caplog = (uint8_t)newlog;
    }
    m->sym[n->off + n->nsym] = x;
    m->cnt[n->off + n->nsym] = 1;
    n->nsym++;
    return 0;
}

static inline void discounts(const Model *m, int k, double *D) {
    const double *c = m->cc[k];
    if (c[1] > 0 && c[2] > 0 && c[3] > 0 && c[4] > 0) {
        double Y = c[1] / (c[1] + 2 * c[2]);
        D[1] = 1 - 2 * Y * c[2] / c[1];
        D[2] = 2 - 3 * Y * c[3] / c[2];
        D[3] = 3 - 4 * Y * c[4] / c[3];
        for (int r = 1; r <= 3; r++) {
            if (D[r] < 0.05) D[r] = 0.05;
            if (D[r] > r - 0.05) D[r] = r - 0.05;
        }
    } else {
        D[1] = 0.5;
        D[2] = 1.0;
        D[3] = 1.5;
    }
}

/* Predict position i of buf from buf[0..i-1]: fills pd, and p (when need_p). */
static void predict_pos(Model *m, const uint8_t *buf, int64_t i, int use_match, int need_p,
                        double *p, Pending *pd) {
    const int K = m->order;
    int avail = i < K ? (int)i : K;
    uint64_t h = 0;
    for (int j = 1; j <= avail; j++) h |= (uint64_t)buf[i - j] << (8 * (j - 1));
    for (int k = avail; k >= 0; k--) {
        uint64_t ctx = k == 8 ? h : (h & (((uint64_t)1 << (8 * k)) - 1));
        pd->nidx[k] = find_node(m, k, ctx);
    }
    pd->h = h;
    pd->avail = avail;
    pd->predicted = -1;
    pd->lb = pd->pb = 0;
    if (!(need_p || use_match)) return;
    memset(p, 0, 256 * sizeof(double));
    double w = 1.0;
    for (int k = avail; k >= 0; k--) {
        if (pd->nidx[k] < 0) continue;
        Node *n = &m->nodes[pd->nidx[k]];
        if (n->total == 0) continue;
        double D[4];
        discounts(m, k, D);
        double inv = w / (double)n->total;
        const uint8_t *s = m->sym + n->off;
        const uint32_t *c = m->cnt + n->off;
        for (int j = 0; j < n->nsym; j++) {
            uint32_t cj = c[j];
            double d = cj >= 3 ? D[3] : D[cj];
            p[s[j]] += ((double)cj - d) * inv;
        }
        int n3 = n->nsym - n->n1 - n->n2;
        w *= (D[1] * n->n1 + D[2] * n->n2 + D[3] * n3) / (double)n->total;
    }
    double u = w / 256.0;
    for (int j = 0; j < 256; j++) p[j] += u;
    if (use_match && m->mlen > 0) {
        int predicted = buf[m->mptr];
        double pk = p[predicted];
        int lb = lbucket(m->mlen), pb = pbucket(pk);
        double q = (m->sse_hit[lb][pb] + SSE_PRIOR * pk) / (m->sse_tot[lb][pb] + SSE_PRIOR);
        if (pk < 1.0 - 1e-12) {
            double scale = (1.0 - q) / (1.0 - pk);
            for (int j = 0; j < 256; j++) p[j] *= scale;
            p[predicted] = q;
        }
        pd->predicted = predicted;
        pd->lb = lb;
        pd->pb = pb;
    }
}

/* Learn buf[i] after predict_pos(i): KN counts, SSE, match model. */
static void learn_pos(Model *m, const uint8_t *buf, int64_t i, int use_match, Pending *pd) {
    const int L = m->match_min;
    const uint64_t mmask = ((uint64_t)1 << m->mbits) - 1;
    const uint64_t h = pd->h;
    int64_t *nidx = pd->nidx;
    uint8_t x = buf[i];
    /* KN counts with update exclusion */
    for (int k = pd->avail; k >= 0; k--) {
        Node *n;
        if (nidx[k] < 0) {
            uint64_t ctx = k == 8 ? h : (h & (((uint64_t)1 << (8 * k)) - 1));
            /* re-probe: a node created for a higher order may have taken the slot */
            int64_t slot = -1 - find_node(m, k, ctx);
            n = &m->nodes[slot];
            n->ctx = ctx;
            n->order = (uint8_t)k;
            n->total = 0;
            n->nsym = 0;
            n->n1 = n->n2 = 0;
            n->caplog = 0;
            n->off = 0;
            m->count++;
            nidx[k] = slot;
        } else {
            n = &m->nodes[nidx[k]];
            if (n->total >= COUNT_LIMIT) break; /* saturated: no update here or below */
        }
        int found = -1;
        uint8_t *s = m->sym + n->off;
        for (int j = 0; j < n->nsym; j++)
            if (s[j] == x) {
                found = j;
                break;
            }
        n->total++;
        if (found >= 0) {
            uint32_t c = m->cnt[n->off + found]++;
            if (c == 1) {
                n->n1--;
                n->n2++;
            } else if (c == 2) {
                n->n2--;
            }
            if (c <= 4) m->cc[k][c] -= 1;
            if (c + 1 <= 4) m->cc[k][c + 1] += 1;
            break;
        }
        if (node_add(m, n, x) < 0) {
            n->total--;
            break; /* cannot happen after ensure_room */
        }
        n->n1++;
        m->cc[k][1] += 1;
    }
    /* SSE update */
    if (pd->predicted >= 0) {
        int lb = pd->lb, pb = pd->pb;
        m->sse_tot[lb][pb] += 1.0;
        m->sse_hit[lb][pb] += (x == pd->predicted);
        if (m->sse_tot[lb][pb] > SSE_LIMIT) {
            m->sse_tot[lb][pb] *= 0.5;
            m->sse_hit[lb][pb] *= 0.5;
        }
    }
    /* match model */
    if (use_match) {
        if (m->mlen > 0 && buf[m->mptr] == x) {
            m->mlen++;
            m->mptr++;
        } else {
            m->mlen = 0;
        }
        int64_t e = i + 1; /* context buf[e-L:e] */
        if (e >= L) {
            uint64_t hh = 0;
            for (int j = 1; j <= L; j++) hh = (hh + buf[e - j] + 1) * 0x2F0F3C1B5A3D9E7BULL;
            uint64_t slot = (hh >> 20) & mmask;
            if (m->mlen == 0) {
                int64_t cand = (int64_t)m->mtab[slot] - 1;
                if (cand >= L && memcmp(buf + cand - L, buf + e - L, L) == 0) {
                    int64_t len = L;
                    while (len < MATCH_MAXBACK && cand - len - 1 >= 0 &&
                           buf[cand - len - 1] == buf[e - len - 1])
                        len++;
                    m->mlen = len;
                    m->mptr = cand;
                }
            }
            m->mtab[slot] = (uint32_t)(e + 1);
        }
    }
}

/*
 * The coder's distribution: p quantised to integer frequencies f_j >= 1 with
 * sum f_j = 2^QPREC exactly, written as the "free weights" f_j - 1 (float32, exact: every
 * value is an integer below 2^24). Only IEEE-754 additions, multiplications, one division
 * and truncations, in a fixed order (the build turns floating-point contraction off), so
 * the integers are the same on every machine that computes the same p:
 *   Z = p_0 + ... + p_255 (in order), s = (2^QPREC - 256) / Z, w_j = trunc(p_j s),
 *   and the remainder 2^QPREC - 256 - sum w_j (in 0..255) goes to the first most probable j.
 */
#define QPREC 24
static void quantise_row(const double *p, float *out) {
    double z = 0;
    for (int j = 0; j < 256; j++) z += p[j];
    const int64_t free_total = ((int64_t)1 << QPREC) - 256;
    double s = (double)free_total / z;
    int64_t sum = 0;
    int best = 0;
    int64_t w[256];
    for (int j = 0; j < 256; j++) {
        w[j] = (int64_t)(p[j] * s);
        sum += w[j];
        if (p[j] > p[best]) best = j;
    }
    w[best] += free_total - sum;
    for (int j = 0; j < 256; j++) out[j] = (float)w[j];
}

/* Process positions lo..hi-1 of buf. out: NULL, or hi-lo rows of 256 doubles (log-probs,
 * out_q == 0) or floats (free weights of the quantised distribution, out_q == 1).
 * Returns the sum of -log p(buf[i]) over the positions (nats) when out_q, else 0. */
static double run_core(Model *m, const uint8_t *buf, int64_t lo, int64_t hi, void *out,
                       int out_q, int update) {
    double p[256];
    Pending pd;
    const int use_match = m->use_match && update;
    double nats = 0;
    for (int64_t i = lo; i < hi; i++) {
        if (update) ensure_room(m);
        predict_pos(m, buf, i, use_match, out != NULL, p, &pd);
        if (out && out_q) {
            quantise_row(p, (float *)out + (i - lo) * 256);
            nats -= fast_log(p[buf[i]]);
        } else if (out) {
            double *o = (double *)out + (i - lo) * 256;
            for (int j = 0; j < 256; j++) o[j] = fast_log(p[j]);
        }
        if (update) learn_pos(m, buf, i, use_match, &pd);
    }
    return nats;
}

/* ---------------------------------------------------------------- Python glue */

static void Model_dealloc(Model *m) {
    free(m->nodes);
    free(m->sym);
    free(m->cnt);
    free(m->mtab);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static int Model_init(Model *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"order", "max_nodes_log2", "max_slab_log2", "match_min",
                             "use_match", "match_bits", NULL};
    int order = 6, mn = 22, ms = 25, mm = 4, um = 1, mb = 20;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iiiiii", kwlist, &order, &mn, &ms, &mm, &um,
                                     &mb))
        return -1;
    if (order < 0 || order > MAXORD) {
        PyErr_Format(PyExc_ValueError, "order: expected 0..%d, got %d", MAXORD, order);
        return -1;
    }
    if (mn < 13 || mn > 30 || ms < 15 || ms > 31 || mm < 1 || mm > 32 || mb < 8 || mb > 28) {
        PyErr_SetString(PyExc_ValueError, "invalid table sizes");
        return -1;
    }
    free(m->nodes);
    free(m->sym);
    free(m->cnt);
    free(m->mtab);
    m->nodes = NULL;
    m->sym = NULL;
    m->cnt = NULL;
    m->mtab = NULL;
    m->order = order;
    m->max_cap = (uint64_t)1 << mn;
    m->slab_max = (uint64_t)1 << ms;
    m->slab_cap = m->slab_used = 0;
    m->match_min = mm;
    m->use_match = um;
    m->mbits = mb;
    m->restarts = 0;
    memset(m->sse_hit, 0, sizeof(m->sse_hit));
    memset(m->sse_tot, 0, sizeof(m->sse_tot));
    clear_stats(m);
    if (!m->nodes) {
        PyErr_NoMemory();
        return -1;
    }
    m->mptr = m->mlen = 0;
    m->pend_i = -1;
    return 0;
}

static PyObject *Model_begin(Model *m, PyObject *noargs) {
    /* start a new document: clear the match model */
    if (m->use_match) {
        if (!m->mtab) {
            m->mtab = (uint32_t *)calloc((size_t)1 << m->mbits, sizeof(uint32_t));
            if (!m->mtab) return PyErr_NoMemory();
        } else {
            memset(m->mtab, 0, ((size_t)1 << m->mbits) * sizeof(uint32_t));
        }
    }
    m->mptr = m->mlen = 0;
    Py_RETURN_NONE;
}

static int check_range(Py_buffer *buf, Py_ssize_t lo, Py_ssize_t hi, const char *who) {
    if (lo < 0 || hi > buf->len || lo > hi) {
        PyErr_Format(PyExc_ValueError, "%s: bad range", who);
        return -1;
    }
    if (buf->len > 0xFFFFFFF0LL) {
        PyErr_Format(PyExc_ValueError, "%s: document longer than 4 GB", who);
        return -1;
    }
    return 0;
}

/* out: None, float64 [rows >= n, 256] (log-probs) or float32 [rows >= n, 256] (free
 * weights of the quantised distribution); sets *q to 1 for float32. */
static int get_out(PyObject *outobj, Py_ssize_t n, void **out, int *q) {
    *out = NULL;
    *q = 0;
    if (outobj == Py_None) return 0;
    if (!PyArray_Check(outobj)) goto bad;
    PyArrayObject *a = (PyArrayObject *)outobj;
    int ty = PyArray_TYPE(a);
    if ((ty != NPY_FLOAT64 && ty != NPY_FLOAT32) || PyArray_NDIM(a) != 2 ||
        !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISWRITEABLE(a) || PyArray_DIM(a, 1) != 256 ||
        PyArray_DIM(a, 0) < n)
        goto bad;
    *out = PyArray_DATA(a);
    *q = ty == NPY_FLOAT32;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError,
                    "run: out must be a C-contiguous float64 or float32 [rows, 256]");
    return -1;
}

static int ensure_mtab(Model *m) {
    if (m->use_match && !m->mtab) {
        PyObject *r = Model_begin(m, NULL);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* run(buf, lo, hi, out, update) -> None, or the nats of buf[lo:hi] when out is float32 */
static PyObject *Model_run(Model *m, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t lo, hi;
    PyObject *outobj;
    int update, q;
    void *out;
    if (!PyArg_ParseTuple(args, "y*nnOp", &buf, &lo, &hi, &outobj, &update)) return NULL;
    if (check_range(&buf, lo, hi, "run") < 0 || get_out(outobj, hi - lo, &out, &q) < 0 ||
        (update && ensure_mtab(m) < 0)) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    m->pend_i = -1;
    double nats;
    Py_BEGIN_ALLOW_THREADS nats = run_core(m, (const uint8_t *)buf.buf, lo, hi, out, q, update);
    Py_END_ALLOW_THREADS PyBuffer_Release(&buf);
    if (q) return PyFloat_FromDouble(nats);
    Py_RETURN_NONE;
}

/* predict(buf, i, out[, update]) -> None: the quantised distribution of position i (free
 * weights, float32 [>= 1, 256]) from buf[0..i-1], as run(buf, i, i + 1, out, update)
 * computes it, without learning; learn(buf, i) then learns buf[i] (which may be written in
 * between) when update, and returns its surprisal in nats either way. */
static PyObject *Model_predict(Model *m, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t i;
    PyObject *outobj;
    int q, update = 1;
    void *out;
    if (!PyArg_ParseTuple(args, "y*nO|p", &buf, &i, &outobj, &update)) return NULL;
    if (check_range(&buf, i, i + 1, "predict") < 0 || get_out(outobj, 1, &out, &q) < 0 ||
        (update && ensure_mtab(m) < 0)) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    if (!q) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "predict: out must be float32 [rows, 256]");
        return NULL;
    }
    if (update) ensure_room(m);
    predict_pos(m, (const uint8_t *)buf.buf, i, m->use_match && update, 1, m->pend_p, &m->pend);
    quantise_row(m->pend_p, m->pend_w);
    memcpy(out, m->pend_w, sizeof m->pend_w);
    m->pend_i = i;
    m->pend_update = update;
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* learn(buf, i) -> float: learn buf[i] after predict(buf, i, ...); returns -log p(buf[i]) */
static PyObject *Model_learn(Model *m, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t i;
    if (!PyArg_ParseTuple(args, "y*n", &buf, &i)) return NULL;
    if (check_range(&buf, i, i + 1, "learn") < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    if (m->pend_i != i) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "learn: expected predict() of the same position first");
        return NULL;
    }
    const uint8_t *b = (const uint8_t *)buf.buf;
    double nats = -fast_log(m->pend_p[b[i]]);
    m->qbits += QPREC - fast_log((double)m->pend_w[b[i]] + 1.0) * 1.4426950408889634074;
    if (m->pend_update) learn_pos(m, b, i, m->use_match, &m->pend);
    m->pend_i = -1;
    PyBuffer_Release(&buf);
    return PyFloat_FromDouble(nats);
}

/* take_bits() -> float: the quantised bits learn() added up since the last call */
static PyObject *Model_take_bits(Model *m, PyObject *noargs) {
    double b = m->qbits;
    m->qbits = 0;
    return PyFloat_FromDouble(b);
}

/* rebase(shift): the document buffer loses its first `shift` bytes (the caller keeps the
 * rest as the start of the next buffer): match-table positions move down by shift, and
 * those that pointed into the dropped part are forgotten. */
static PyObject *Model_rebase(Model *m, PyObject *args) {
    Py_ssize_t shift;
    if (!PyArg_ParseTuple(args, "n", &shift)) return NULL;
    if (shift < 0) {
        PyErr_SetString(PyExc_ValueError, "rebase: expected shift >= 0");
        return NULL;
    }
    if (m->mtab) {
        size_t n = (size_t)1 << m->mbits;
        for (size_t k = 0; k < n; k++) {
            uint32_t v = m->mtab[k];
            m->mtab[k] = v > (uint64_t)shift ? (uint32_t)(v - shift) : 0;
        }
    }
    if (m->mlen > 0) {
        if (m->mptr >= shift) {
            m->mptr -= shift;
        } else {
            m->mlen = 0;
            m->mptr = 0;
        }
    }
    m->pend_i = -1;
    Py_RETURN_NONE;
}

static PyTypeObject ModelType;

static PyObject *Model_copy(Model *m, PyObject *noargs) {
    Model *c = (Model *)PyObject_CallObject((PyObject *)&ModelType, NULL);
    if (!c) return NULL;
    free(c->nodes);
    c->order = m->order;
    c->match_min = m->match_min;
    c->use_match = m->use_match;
    c->mbits = m->mbits;
    c->max_cap = m->max_cap;
    c->slab_max = m->slab_max;
    c->cap = m->cap;
    c->count = m->count;
    c->restarts = m->restarts;
    c->nodes = (Node *)malloc(m->cap * sizeof(Node));
    c->slab_cap = m->slab_used > 0 ? m->slab_used : 1;
    c->slab_used = m->slab_used;
    c->sym = (uint8_t *)malloc(c->slab_cap);
    c->cnt = (uint32_t *)malloc(c->slab_cap * sizeof(uint32_t));
    if (!c->nodes || !c->sym || !c->cnt) {
        Py_DECREF(c);
        return PyErr_NoMemory();
    }
    memcpy(c->nodes, m->nodes, m->cap * sizeof(Node));
    if (m->slab_used) { /* an empty model has no slab yet (NULL): nothing to copy */
        memcpy(c->sym, m->sym, m->slab_used);
        memcpy(c->cnt, m->cnt, m->slab_used * sizeof(uint32_t));
    }
    memcpy(c->freelist, m->freelist, sizeof(m->freelist));
    memcpy(c->cc, m->cc, sizeof(m->cc));
    memcpy(c->sse_hit, m->sse_hit, sizeof(m->sse_hit));
    memcpy(c->sse_tot, m->sse_tot, sizeof(m->sse_tot));
    c->mptr = c->mlen = 0;
    c->pend_i = -1;
    return (PyObject *)c;
}

/* export() -> (orders uint8[n], ctx uint64[n], nsym uint16[n], sym uint8[t], cnt uint32[t],
 *              sse float64[2, NLB, NPB]) */
static PyObject *Model_export(Model *m, PyObject *noargs) {
    npy_intp n = (npy_intp)m->count, t = 0;
    for (uint64_t i = 0; i < m->cap; i++)
        if (m->nodes[i].order != EMPTY) t += m->nodes[i].nsym;
    npy_intp d3[3] = {2, NLB, NPB};
    PyArrayObject *ao = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT8);
    PyArrayObject *ac = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT64);
    PyArrayObject *an = (PyArrayObject *)PyArray_SimpleNew(1, &n, NPY_UINT16);
    PyArrayObject *as = (PyArrayObject *)PyArray_SimpleNew(1, &t, NPY_UINT8);
    PyArrayObject *at = (PyArrayObject *)PyArray_SimpleNew(1, &t, NPY_UINT32);
    PyArrayObject *ae = (PyArrayObject *)PyArray_SimpleNew(3, d3, NPY_FLOAT64);
    if (!ao || !ac || !an || !as || !at || !ae) {
        Py_XDECREF(ao);
        Py_XDECREF(ac);
        Py_XDECREF(an);
        Py_XDECREF(as);
        Py_XDECREF(at);
        Py_XDECREF(ae);
        return NULL;
    }
    uint8_t *po = PyArray_DATA(ao);
    uint64_t *pc = PyArray_DATA(ac);
    uint16_t *pn = PyArray_DATA(an);
    uint8_t *ps = PyArray_DATA(as);
    uint32_t *pt = PyArray_DATA(at);
    npy_intp a = 0, b = 0;
    /* sorted by (order, ctx) would be nicer; table order is deterministic for a given
     * history, which is all we need */
    for (uint64_t i = 0; i < m->cap; i++) {
        Node *nd = &m->nodes[i];
        if (nd->order == EMPTY) continue;
        po[a] = nd->order;
        pc[a] = nd->ctx;
        pn[a] = nd->nsym;
        a++;
        memcpy(ps + b, m->sym + nd->off, nd->nsym);
        memcpy(pt + b, m->cnt + nd->off, nd->nsym * sizeof(uint32_t));
        b += nd->nsym;
    }
    double *pe = PyArray_DATA(ae);
    memcpy(pe, m->sse_hit, sizeof(m->sse_hit));
    memcpy(pe + NLB * NPB, m->sse_tot, sizeof(m->sse_tot));
    return Py_BuildValue("(NNNNNN)", ao, ac, an, as, at, ae);
}

/* load(orders, ctx, nsym, sym, cnt, sse): replace the statistics (arrays validated in
 * Python for dtype and shape; this checks consistency). */
static PyObject *Model_load(Model *m, PyObject *args) {
    PyArrayObject *ao, *ac, *an, *as, *at, *ae;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!", &PyArray_Type, &ao, &PyArray_Type, &ac,
                          &PyArray_Type, &an, &PyArray_Type, &as, &PyArray_Type, &at,
                          &PyArray_Type, &ae))
        return NULL;
    npy_intp n = PyArray_SIZE(ao), t = PyArray_SIZE(as);
    if (PyArray_TYPE(ao) != NPY_UINT8 || PyArray_TYPE(ac) != NPY_UINT64 ||
        PyArray_TYPE(an) != NPY_UINT16 || PyArray_TYPE(as) != NPY_UINT8 ||
        PyArray_TYPE(at) != NPY_UINT32 || PyArray_TYPE(ae) != NPY_FLOAT64 ||
        PyArray_SIZE(ac) != n || PyArray_SIZE(an) != n || PyArray_SIZE(at) != t ||
        PyArray_SIZE(ae) != 2 * NLB * NPB || !PyArray_IS_C_CONTIGUOUS(ao) ||
        !PyArray_IS_C_CONTIGUOUS(ac) || !PyArray_IS_C_CONTIGUOUS(an) ||
        !PyArray_IS_C_CONTIGUOUS(as) || !PyArray_IS_C_CONTIGUOUS(at) ||
        !PyArray_IS_C_CONTIGUOUS(ae)) {
        PyErr_SetString(PyExc_ValueError, "arrays have wrong dtypes or sizes");
        return NULL;
    }
    const uint8_t *po = PyArray_DATA(ao);
    const uint64_t *pc = PyArray_DATA(ac);
    const uint16_t *pn = PyArray_DATA(an);
    const uint8_t *ps = PyArray_DATA(as);
    const uint32_t *pt = PyArray_DATA(at);
    npy_intp sum = 0;
    for (npy_intp i = 0; i < n; i++) {
        if (po[i] > m->order || pn[i] > 256 ||
            (po[i] < 8 && (pc[i] >> (8 * po[i])) != 0)) {
            PyErr_SetString(PyExc_ValueError, "inconsistent context table");
            return NULL;
        }
        sum += pn[i];
    }
    if (sum != t) {
        PyErr_SetString(PyExc_ValueError, "symbol table size does not match the contexts");
        return NULL;
    }
    uint64_t cap = 1 << 12;
    while (cap < (uint64_t)n * 2 + 2 * (uint64_t)(m->order + 1)) cap *= 2;
    if (cap > m->max_cap) m->max_cap = cap * 2;
    uint64_t slab_need = 0;
    for (npy_intp i = 0; i < n; i++) {
        uint64_t c = 1;
        while (c < pn[i]) c *= 2;
        slab_need += c;
    }
    if (slab_need + 256 * (uint64_t)(m->order + 1) > m->slab_max) {
        uint64_t s = m->slab_max;
        while (s < 2 * slab_need) s *= 2;
        m->slab_max = s;
    }
    free(m->nodes);
    m->nodes = NULL;
    if (alloc_tables(m, cap) < 0) return PyErr_NoMemory();
    m->slab_used = 0;
    for (int i = 0; i < 9; i++) m->freelist[i] = -1;
    memset(m->cc, 0, sizeof(m->cc));
    npy_intp b = 0;
    for (npy_intp i = 0; i < n; i++) {
        int64_t j = find_node(m, po[i], pc[i]);
        if (j >= 0) {
            PyErr_SetString(PyExc_ValueError, "duplicate context");
            clear_stats(m);
            return NULL;
        }
        Node *nd = &m->nodes[-1 - j];
        memset(nd, 0, sizeof(Node));
        nd->order = po[i];
        nd->ctx = pc[i];
        m->count++;
        int caplog = 0;
        while ((1 << caplog) < pn[i]) caplog++;
        if (pn[i]) {
            int64_t off = slab_alloc(m, caplog);
            if (off < 0) {
                clear_stats(m);
                return PyErr_NoMemory();
            }
            nd->off = (uint32_t)off;
            nd->caplog = (uint8_t)caplog;
        }
        uint8_t seen[256] = {0};
        uint64_t total = 0;
        for (int s = 0; s < pn[i]; s++) total += pt[b + s];
        if (total > COUNT_LIMIT) {
            PyErr_SetString(PyExc_ValueError, "a context's counts sum past the count limit");
            clear_stats(m);
            return NULL;
        }
        for (int s = 0; s < pn[i]; s++, b++) {
            uint32_t c = pt[b];
            if (c == 0 || seen[ps[b]]) {
                PyErr_SetString(PyExc_ValueError, "invalid symbol counts");
                clear_stats(m);
                return NULL;
            }
            seen[ps[b]] = 1;
            m->sym[nd->off + s] = ps[b];
            m->cnt[nd->off + s] = c;
            nd->total += c;
            if (c == 1) nd->n1++;
            if (c == 2) nd->n2++;
            if (c <= 4) m->cc[nd->order][c] += 1;
        }
        nd->nsym = pn[i];
    }
    const double *pe = PyArray_DATA(ae);
    for (int i = 0; i < NLB * NPB; i++) {
        double h = pe[i], t = pe[NLB * NPB + i];
        /* finite, 0 <= hits <= trials <= SSE_LIMIT (written as negations to catch NaN) */
        if (!(h >= 0 && h <= t && t <= SSE_LIMIT)) {
            PyErr_SetString(PyExc_ValueError, "SSE table out of range");
            clear_stats(m);
            return NULL;
        }
    }
    memcpy(m->sse_hit, pe, sizeof(m->sse_hit));
    memcpy(m->sse_tot, pe + NLB * NPB, sizeof(m->sse_tot));
    Py_RETURN_NONE;
}

static PyObject *Model_info(Model *m, PyObject *noargs) {
    PyObject *cc = PyList_New(m->order + 1);
    if (!cc) return NULL;
    for (int k = 0; k <= m->order; k++)
        PyList_SET_ITEM(cc, k, Py_BuildValue("(dddd)", m->cc[k][1], m->cc[k][2], m->cc[k][3],
                                             m->cc[k][4]));
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:i,s:N}", "contexts", (unsigned long long)m->count,
                         "table_capacity", (unsigned long long)m->cap, "slab_used",
                         (unsigned long long)m->slab_used, "restarts",
                         (unsigned long long)m->restarts, "order", m->order, "count_of_counts", cc);
}

static PyMethodDef Model_methods[] = {
    {"begin", (PyCFunction)Model_begin, METH_NOARGS, "Start a new document."},
    {"run", (PyCFunction)Model_run, METH_VARARGS,
     "run(buf, lo, hi, out_or_None, update): predict/update positions lo..hi-1."},
    {"predict", (PyCFunction)Model_predict, METH_VARARGS,
     "predict(buf, i, out_f32): quantised distribution of position i, not learned yet."},
    {"learn", (PyCFunction)Model_learn, METH_VARARGS,
     "learn(buf, i): learn buf[i] after predict(buf, i); returns its surprisal in nats."},
    {"take_bits", (PyCFunction)Model_take_bits, METH_NOARGS,
     "take_bits(): -log2 f/2^24 of the symbols learn() saw since the last call."},
    {"rebase", (PyCFunction)Model_rebase, METH_VARARGS,
     "rebase(shift): the buffer dropped its first shift bytes."},
    {"copy", (PyCFunction)Model_copy, METH_NOARGS, "Deep copy of the statistics."},
    {"export", (PyCFunction)Model_export, METH_NOARGS, "Statistics as numpy arrays."},
    {"load", (PyCFunction)Model_load, METH_VARARGS, "Replace statistics from arrays."},
    {"info", (PyCFunction)Model_info, METH_NOARGS, "Table sizes."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "infolens._ngram_native.Model",
    .tp_basicsize = sizeof(Model),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Model_init,
    .tp_dealloc = (destructor)Model_dealloc,
    .tp_methods = Model_methods,
    .tp_doc = "Adaptive interpolated Kneser-Ney byte model with a match model.",
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_ngram_native",
                                    "Compiled core of infolens.models.ngram.", -1, NULL};

PyMODINIT_FUNC PyInit__ngram_native(void) {
    import_array();
    if (PyType_Ready(&ModelType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&moddef);
    if (!mod) return NULL;
    Py_INCREF(&ModelType);
    PyModule_AddObject(mod, "Model", (PyObject *)&ModelType);
    PyModule_AddIntConstant(mod, "MAXORD", MAXORD);
    PyModule_AddIntConstant(mod, "FORMAT_SSE_SHAPE_L", NLB);
    PyModule_AddIntConstant(mod, "FORMAT_SSE_SHAPE_P", NPB);
    PyModule_AddIntConstant(mod, "COUNT_LIMIT", (long)COUNT_LIMIT);
    PyModule_AddObject(mod, "SSE_LIMIT", PyFloat_FromDouble(SSE_LIMIT));
    PyModule_AddIntConstant(mod, "QUANT_PRECISION", QPREC);
    return mod;
}
