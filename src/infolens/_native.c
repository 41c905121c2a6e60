/*
 * infolens._native: the compiled row kernel behind infolens._kernels.fused_rows.
 *
 * fused_rows(a, b, t, rank, js, nthreads[, bf16]) -> dict of per-row float64 / int64 arrays.
 *
 *   a        C-contiguous [N, V] float64, float32, float16 or bfloat16 logits (or
 *            log-probs; -inf = p 0); bfloat16 comes as its uint16 bit patterns
 *            with bf16 = 1 (numpy has no bfloat16)
 *   b        None, or the same shape and dtype (the logits of q)
 *   t        None, or int64 [N] target ids (range-checked by the caller)
 *   rank     also count 1 + #{i : a_i > a_t} (and for b)
 *   js       also compute the Jensen-Shannon divergence (needs b; key "js")
 *   nthreads threads to use (row blocks; the GIL is released while computing)
 *
 * Per row: one read pass for the maximum (and argmax, and a NaN check), then one fused
 * pass over the row -- now in L2 -- that computes exp once per element with our own
 * branch-free vectorised exp and accumulates every sum in double:
 *
 *   x = a - max a, u = exp(x), Z = sum u, lse = max + log Z, H = log Z - sum(u x) / Z
 *   d = x - y (0 where either is -inf)
 *   KL(p||q) = sum(u d) / Z_a + log Z_b - log Z_a   (+inf if x_i finite where y_i = -inf)
 *   KL(q||p) = -sum(v d) / Z_b + log Z_a - log Z_b  (+inf if y_i finite where x_i = -inf)
 *   H(p,q)   = log Z_b - sum(u y) / Z_a             (same +inf rule as KL(p||q))
 *            = log Z_b - sum(u x) / Z_a + sum(u d) / Z_a  (how it is computed: no extra sums)
 *   surprisal = log Z - (a_t - max a)               (not lse - a_t: lse rounds to max a
 *                                                    when |max a| is near 1e308)
 *
 * Every rule is on the shifted x = a - max a, not on a: a finite logit whose shifted value
 * overflows to -inf (a spread over 1.8e308, e.g. [1e308, -1e308]) is a log-probability
 * below the float64 range, i.e. probability 0, and its terms are exactly 0 (never
 * 0 * -inf = NaN). The shifted values are <= 0, so x - y never overflows, but a sum of
 * several terms u d near 1e308 can; such a (rare) row is summed again with d scaled by
 * 2^-k < 1/V, whose sums cannot overflow.
 *
 * Jensen-Shannon needs the normalised p = u / Z_a and q = w / Z_b, which are known only
 * after the fused pass, so it takes one more pass over the row (still in L2; exp is
 * recomputed). With D = log q - log p = (y - x) + log Z_a - log Z_b and
 * g(D) = log((1 + e^D) / 2) = max(D, 0) + L, L = log1p(expm1(-|D|) / 2),
 *   JS = -1/2 sum [p g(D) + q g(-D)] = -1/2 sum [(p + q) L + min(p, q) |D|]
 * with our own branch-free vectorised expm1 and log1p (one division); L is exactly 0 at
 * D = 0, so JS of a row with itself is exactly 0. Clamped to [0, ln 2].
 *
 * The arithmetic is written with GCC vector extensions on 8 doubles, inlined into three
 * copies compiled for AVX-512, AVX2+FMA and baseline x86-64 (or the host's baseline on
 * other architectures), chosen at import time from the running CPU.
 */
#ifndef INFOLENS_KERNEL
#define INFOLENS_KERNEL
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ vector types */

#define W 8 /* lanes */
typedef double vd __attribute__((vector_size(64)));
typedef int64_t vl __attribute__((vector_size(64)));
typedef float vf __attribute__((vector_size(32)));
typedef uint16_t vh __attribute__((vector_size(16)));
typedef uint32_t vu __attribute__((vector_size(32)));

#pragma GCC diagnostic ignored "-Wpsabi"
#define AI static inline __attribute__((always_inline))

/* ------------------------------------------------------------------ the job */

typedef struct {
    const void *a, *b;
    const int64_t *t;
    int kind, rank, js; /* kind: K_F64, K_F32, K_BF16 or K_F16 */
    npy_intp n, v;
    double *lse_p, *ent_p, *max_p, *lse_q, *ent_q, *max_q;
    double *kl_pq, *kl_qp, *ce_pq, *ce_qp, *sur_p, *sur_q, *js_pq;
    int64_t *am_p, *am_q, *rk_p, *rk_q;
    npy_intp next; /* next row block, taken atomically */
    /* quantize_rows: free weights out, precision, 1 + a bad row (0: none) */
    float *qout;
    int qprec, quantise;
    npy_intp qbad;
} Job;

#define BLOCK 4 /* rows per grab */

/* element kinds; half-precision inputs are widened to double as they are loaded */
#define K_F64 0
#define K_F32 1
#define K_BF16 2
#define K_F16 3

static inline double bf16_to_double(uint16_t h) {
    uint32_t u = (uint32_t)h << 16; /* bfloat16 is the top half of a float32 */
    float f;
    memcpy(&f, &u, sizeof f);
    return (double)f;
}

/* IEEE binary16 -> double, exactly: the exponent and mantissa bits moved into a float32's
 * place and rescaled by 2^(127 - 15) (exact, subnormals included); inf/NaN (exponent 31)
 * get the float32 all-ones exponent. */
static inline double f16_to_double(uint16_t h) {
    uint32_t a = h & 0x7fffu, u = a << 13;
    float f;
    memcpy(&f, &u, sizeof f);
    f *= 0x1p112f;
    if (a >= 0x7c00u) {
        uint32_t w = u | 0x7f800000u;
        memcpy(&f, &w, sizeof f);
    }
    double d = (double)f;
    return (h & 0x8000u) ? -d : d;
}

typedef struct {
    double za, zb, sa, sb, sud, svd;
    int miss_pq, miss_qp;
} Sums2;

#define TWO_BODY                                                                           \
    do {                                                                                   \
        vd x = av - ma, y = bv - mb;                                                       \
        vl fa = (vl)(x != ninf), fb = (vl)(y != ninf);                                     \
        vl both = fa & fb;                                                                 \
        vd u = vexp(x), w = vexp(y);                                                       \
        za += u;                                                                           \
        zb += w;                                                                           \
        sa += vand(fa, u * x);                                                             \
        sb += vand(fb, w * y);                                                             \
        vd d = vand(both, x - y);                                                          \
        if (scaled) d = d * scv;                                                           \
        sud += u * d;                                                                      \
        svd += w * d;                                                                      \
        mpq |= fa & ~fb;                                                                   \
        mqp |= fb & ~fa;                                                                   \
    } while (0)

/* ------------------------------------------------------------------ dispatch */

typedef void (*rows_fn)(Job *, npy_intp, npy_intp);

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,bmi2")
#define SFX _avx512
#include "_native.c"
#undef SFX
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2")
#define SFX _avx2
#include "_native.c"
#undef SFX
#pragma GCC pop_options
#endif
#define SFX _base
#include "_native.c"
#undef SFX

static rows_fn g_rows = rows_base;
static rows_fn g_quant = quant_base;
static const char *g_isa = "baseline";

static void pick_isa(void) {
#ifdef HAVE_X86_DISPATCH
    const char *force = getenv("INFOLENS_NATIVE_ISA"); /* testing: avx512, avx2, baseline */
    __builtin_cpu_init();
    if (force && strcmp(force, "baseline") == 0) return;
    if (force && strcmp(force, "avx2") == 0 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        g_rows = rows_avx2;
        g_quant = quant_avx2;
        g_isa = "avx2";
        return;
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")) {
        g_rows = rows_avx512;
        g_quant = quant_avx512;
        g_isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        g_rows = rows_avx2;
        g_quant = quant_avx2;
        g_isa = "avx2";
    }
#endif
}

static void *worker(void *arg) {
    Job *j = (Job *)arg;
    for (;;) {
        npy_intp lo = __atomic_fetch_add(&j->next, BLOCK, __ATOMIC_RELAXED);
        if (lo >= j->n) break;
        npy_intp hi = lo + BLOCK < j->n ? lo + BLOCK : j->n;
        (j->quantise ? g_quant : g_rows)(j, lo, hi);
    }
    return NULL;
}

#define MAX_THREADS 256

static void run_job(Job *j, int nthreads) {
    npy_intp blocks = (j->n + BLOCK - 1) / BLOCK;
    if (nthreads > blocks) nthreads = (int)blocks;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    if (nthreads < 1) nthreads = 1;
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (int k = 1; k < nthreads; k++) {
        if (pthread_create(&tid[started], NULL, worker, j) != 0) break; /* fewer is fine */
        started++;
    }
    worker(j);
    for (int k = 0; k < started; k++) pthread_join(tid[k], NULL);
}

/* ------------------------------------------------------------------ Python glue */

static PyArrayObject *new_vec(npy_intp n, int typenum) {
    npy_intp dims[1] = {n};
    return (PyArrayObject *)PyArray_SimpleNew(1, dims, typenum);
}

static int check_logits(PyObject *o, const char *name, int bf16) {
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a numpy array", name);
        return -1;
    }
    PyArrayObject *x = (PyArrayObject *)o;
    int ty = PyArray_TYPE(x);
    int ok = bf16 ? ty == NPY_UINT16
                  : (ty == NPY_FLOAT32 || ty == NPY_FLOAT64 || ty == NPY_FLOAT16);
    if (PyArray_NDIM(x) != 2 || !PyArray_IS_C_CONTIGUOUS(x) || !ok ||
        !PyArray_ISNOTSWAPPED(x)) {
        PyErr_Format(PyExc_ValueError,
                     bf16 ? "%s: expected a C-contiguous 2-D uint16 array (bfloat16 bits)"
                          : "%s: expected a C-contiguous 2-D float64, float32 or float16 array",
                     name);
        return -1;
    }
    return 0;
}

static PyObject *py_fused_rows(PyObject *self, PyObject *args) {
    PyObject *ao, *bo, *to;
    int rank, js, nthreads, bf16 = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOppi|p:fused_rows", &ao, &bo, &to, &rank, &js, &nthreads,
                          &bf16))
        return NULL;
    if (check_logits(ao, "a", bf16) < 0) return NULL;
    PyArrayObject *a = (PyArrayObject *)ao, *b = NULL, *t = NULL;
    npy_intp n = PyArray_DIM(a, 0), v = PyArray_DIM(a, 1);
    if (bo != Py_None) {
        if (check_logits(bo, "b", bf16) < 0) return NULL;
        b = (PyArrayObject *)bo;
        if (PyArray_TYPE(b) != PyArray_TYPE(a) || PyArray_DIM(b, 0) != n ||
            PyArray_DIM(b, 1) != v) {
            PyErr_SetString(PyExc_ValueError, "b: expected the shape and dtype of a");
            return NULL;
        }
    }
    if (to != Py_None) {
        if (!PyArray_Check(to) || PyArray_TYPE((PyArrayObject *)to) != NPY_INT64 ||
            PyArray_NDIM((PyArrayObject *)to) != 1 ||
            !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)to) ||
            PyArray_DIM((PyArrayObject *)to, 0) != n) {
            PyErr_SetString(PyExc_ValueError, "t: expected a contiguous int64 array [N]");
            return NULL;
        }
        t = (PyArrayObject *)to;
    }
    if (v < 1) {
        PyErr_SetString(PyExc_ValueError, "a: expected at least one column");
        return NULL;
    }
    if (t) { /* cheap, and keeps a bad id from reading out of bounds */
        const int64_t *tp = (const int64_t *)PyArray_DATA(t);
        for (npy_intp r = 0; r < n; r++)
            if (tp[r] < 0 || tp[r] >= v) {
                PyErr_Format(PyExc_ValueError, "t: id %lld out of range [0, %lld)",
                             (long long)tp[r], (long long)v);
                return NULL;
            }
    }

    Job j;
    memset(&j, 0, sizeof j);
    j.a = PyArray_DATA(a);
    j.b = b ? PyArray_DATA(b) : NULL;
    j.t = t ? (const int64_t *)PyArray_DATA(t) : NULL;
    switch (PyArray_TYPE(a)) {
    case NPY_FLOAT64: j.kind = K_F64; break;
    case NPY_FLOAT32: j.kind = K_F32; break;
    case NPY_FLOAT16: j.kind = K_F16; break;
    default: j.kind = K_BF16; break; /* uint16, checked above */
    }
    j.rank = rank;
    j.js = js && b;
    j.n = n;
    j.v = v;

    /* output arrays: names and slots, in a fixed order */
    const char *names[20];
    PyArrayObject *arrs[20];
    int k = 0;
#define OUT(NAME, FIELD, TYPE, CTYPE)                                                      \
    do {                                                                                   \
        names[k] = NAME;                                                                   \
        arrs[k] = new_vec(n, TYPE);                                                        \
        if (!arrs[k]) goto fail;                                                           \
        j.FIELD = (CTYPE *)PyArray_DATA(arrs[k]);                                          \
        k++;                                                                               \
    } while (0)
    OUT("lse_p", lse_p, NPY_FLOAT64, double);
    OUT("entropy_p", ent_p, NPY_FLOAT64, double);
    OUT("max_p", max_p, NPY_FLOAT64, double);
    if (b) {
        OUT("lse_q", lse_q, NPY_FLOAT64, double);
        OUT("entropy_q", ent_q, NPY_FLOAT64, double);
        OUT("max_q", max_q, NPY_FLOAT64, double);
        OUT("kl_pq", kl_pq, NPY_FLOAT64, double);
        OUT("kl_qp", kl_qp, NPY_FLOAT64, double);
        OUT("cross_pq", ce_pq, NPY_FLOAT64, double);
        OUT("cross_qp", ce_qp, NPY_FLOAT64, double);
        OUT("argmax_p", am_p, NPY_INT64, int64_t);
        OUT("argmax_q", am_q, NPY_INT64, int64_t);
        if (js) OUT("js", js_pq, NPY_FLOAT64, double);
    }
    if (t) {
        OUT("surprisal_p", sur_p, NPY_FLOAT64, double);
        if (b) OUT("surprisal_q", sur_q, NPY_FLOAT64, double);
        if (rank) {
            OUT("rank_p", rk_p, NPY_INT64, int64_t);
            if (b) OUT("rank_q", rk_q, NPY_INT64, int64_t);
        }
    }
#undef OUT

    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS run_job(&j, nthreads);
        Py_END_ALLOW_THREADS
    }

    PyObject *d = PyDict_New();
    if (!d) goto fail;
    for (int i = 0; i < k; i++) {
        if (PyDict_SetItemString(d, names[i], (PyObject *)arrs[i]) < 0) {
            Py_DECREF(d);
            goto fail;
        }
    }
    for (int i = 0; i < k; i++) Py_DECREF(arrs[i]);
    return d;
fail:
    for (int i = 0; i < k; i++) Py_XDECREF(arrs[i]);
    return NULL;
}

/* quantize_rows(a, precision, nthreads[, bf16]) -> float32 [N, V] free weights f - 1 */
static PyObject *py_quantize_rows(PyObject *self, PyObject *args) {
    PyObject *ao;
    int prec, nthreads, bf16 = 0;
    if (!PyArg_ParseTuple(args, "Oii|p:quantize_rows", &ao, &prec, &nthreads, &bf16)) return NULL;
    if (check_logits(ao, "a", bf16) < 0) return NULL;
    PyArrayObject *a = (PyArrayObject *)ao;
    npy_intp n = PyArray_DIM(a, 0), v = PyArray_DIM(a, 1);
    if (prec < 1 || prec > 24 || v < 2 || v > ((npy_intp)1 << prec) - 2) {
        PyErr_Format(PyExc_ValueError,
                     "quantize_rows: expected precision 1..24 and 2 <= V <= 2^precision - 2, "
                     "got precision %d, V %zd", prec, (Py_ssize_t)v);
        return NULL;
    }
    npy_intp dims[2] = {n, v};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!out) return NULL;
    Job j;
    memset(&j, 0, sizeof j);
    j.a = PyArray_DATA(a);
    int ty = PyArray_TYPE(a);
    j.kind = bf16 ? K_BF16 : ty == NPY_FLOAT32 ? K_F32 : ty == NPY_FLOAT16 ? K_F16 : K_F64;
    j.n = n;
    j.v = v;
    j.qout = (float *)PyArray_DATA(out);
    j.qprec = prec;
    j.quantise = 1;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS run_job(&j, nthreads);
        Py_END_ALLOW_THREADS
    }
    if (j.qbad) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError,
                     "quantize_rows: row %zd has a NaN, a +inf or no finite logit",
                     (Py_ssize_t)(j.qbad - 1));
        return NULL;
    }
    return (PyObject *)out;
}

static PyObject *py_isa(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyUnicode_FromString(g_isa);
}

static PyMethodDef methods[] = {
    {"fused_rows", py_fused_rows, METH_VARARGS,
     "fused_rows(a, b, t, rank, js, nthreads[, bf16]) -> dict of per-row statistics (see _kernels)."},
    {"isa", py_isa, METH_NOARGS, "The instruction set the kernel dispatched to."},
    {"quantize_rows", py_quantize_rows, METH_VARARGS,
     "quantize_rows(a, precision, nthreads[, bf16]) -> float32 free weights (see _kernels)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_native", "Compiled fused row kernel of infolens.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    import_array();
    pick_isa();
    return PyModule_Create(&moduledef);
}

#else /* INFOLENS_KERNEL: the per-instruction-set kernel, included once per target */

#define KN(x) KN1(x, SFX)
#define KN1(x, s) KN2(x, s)
#define KN2(x, s) x##s
#define vsplat KN(vsplat)
#define lsplat KN(lsplat)
#define vand KN(vand)
#define vsel KN(vsel)
#define lsel KN(lsel)
#define load_f64 KN(load_f64)
#define load_f32 KN(load_f32)
#define load_bf16 KN(load_bf16)
#define load_f16 KN(load_f16)
#define vload KN(vload)
#define hsum KN(hsum)
#define hor KN(hor)
#define vexp KN(vexp)
#define vexpm1 KN(vexpm1)
#define vlog1p_half KN(vlog1p_half)
#define pass_js KN(pass_js)
#define row_max KN(row_max)
#define elem KN(elem)
#define count_gt KN(count_gt)
#define pass_one KN(pass_one)
#define pass_two KN(pass_two)
#define bad_max KN(bad_max)
#define do_rows KN(do_rows)

AI vd vsplat(double x) { return (vd){x, x, x, x, x, x, x, x}; }
AI vl lsplat(int64_t x) { return (vl){x, x, x, x, x, x, x, x}; }
/* mask ? x : 0 (mask lanes are all ones or all zeros) */
AI vd vand(vl mask, vd x) { return (vd)(mask & (vl)x); }
AI vd vsel(vl mask, vd x, vd y) { return (vd)((mask & (vl)x) | (~mask & (vl)y)); }
AI vl lsel(vl mask, vl x, vl y) { return (mask & x) | (~mask & y); }

AI vd load_f64(const double *p) {
    vd r;
    memcpy(&r, p, sizeof r);
    return r;
}
AI vd load_f32(const float *p) {
    vf r;
    memcpy(&r, p, sizeof r);
    return __builtin_convertvector(r, vd);
}
AI vd load_bf16(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    vu u = __builtin_convertvector(h, vu) << 16;
    return __builtin_convertvector((vf)u, vd);
}
/* binary16 -> double, lane-wise as f16_to_double */
AI vd load_f16(const uint16_t *p) {
    vh h;
    memcpy(&h, p, sizeof h);
    vu x = __builtin_convertvector(h, vu);
    vu a = x & 0x7fffu, u = a << 13;
    vu f = (vu)((vf)u * 0x1p112f);
    vu special = (vu)(a >= 0x7c00u);
    f = (special & (u | 0x7f800000u)) | (~special & f);
    f |= (x & 0x8000u) << 16;
    return __builtin_convertvector((vf)f, vd);
}
/* kind is a compile-time constant wherever this is inlined (see rows below) */
AI vd vload(const void *base, npy_intp i, int kind) {
    switch (kind) {
    case K_F32: return load_f32((const float *)base + i);
    case K_BF16: return load_bf16((const uint16_t *)base + i);
    case K_F16: return load_f16((const uint16_t *)base + i);
    default: return load_f64((const double *)base + i);
    }
}

AI double hsum(vd x) {
    /* fixed pairwise order: results do not depend on the thread count */
    double s0 = (x[0] + x[4]) + (x[2] + x[6]);
    double s1 = (x[1] + x[5]) + (x[3] + x[7]);
    return s0 + s1;
}
AI int64_t hor(vl x) { return x[0] | x[1] | x[2] | x[3] | x[4] | x[5] | x[6] | x[7]; }

/*
 * exp for x <= 0 (what the kernel needs; larger x is only seen on rows the caller
 * rejects, where any finite-time result is fine). Cody-Waite reduction x = n ln2 + r,
 * |r| <= ln2/2, degree-12 Taylor polynomial (truncation < 2^-52 relative), 2^n built in
 * the exponent bits. x < -708 (including -inf) gives exactly 0: such terms are below
 * 2^-1021 and cannot change a sum that contains exp(0) = 1. Error ~1-2 ulp.
 */
#if defined(__AVX512F__)
/*
 * With AVX-512 a 16-entry table of 2^(j/16) fits two registers (one vpermt2pd), so the
 * reduction is x = (16 n + j) ln2/16 + r, |r| <= ln2/32, and a degree-7 polynomial is
 * enough (truncation < 2^-58): five fewer multiply-adds per element.
 */
AI vd vexp(vd x) {
    const vd shift = vsplat(0x1.8p52);
    const vd t0 = {0x1p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
                   0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0,
                   0x1.5ab07dd485429p+0};
    const vd t1 = {0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0,
                   0x1.9c49182a3f090p+0, 0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0,
                   0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0};
    vl tiny = (vl)(x < vsplat(-708.0));
    vd xc = vsel(tiny, vsplat(-708.0), x);
    vd t = xc * vsplat(16.0 * 1.4426950408889634074) + shift; /* k = round(16 x / ln2) */
    vd k = t - shift;
    vd r = xc - k * vsplat(0x1.62e42fefa3800p-5); /* ln2/16, high part */
    r = r - k * vsplat(0x1.ef35793c76730p-49);    /* ln2/16, low part */
    vd p = vsplat(1.0 / 5040.0);
    p = p * r + vsplat(1.0 / 720.0);
    p = p * r + vsplat(1.0 / 120.0);
    p = p * r + vsplat(1.0 / 24.0);
    p = p * r + vsplat(1.0 / 6.0);
    p = p * r + vsplat(0.5);
    p = p * r + vsplat(1.0);
    p = p * r + vsplat(1.0);
    vl kb = (vl)t;
    vd tab = __builtin_shuffle(t0, t1, kb & lsplat(15)); /* 2^(j/16) */
    /* bits(t) = bits(shift) + k with bits(shift) = 0 mod 2^16: (k >> 4) << 52 = 2^n */
    vl e = (kb << 48) & lsplat((int64_t)0xFFF0000000000000ULL);
    return vand(~tiny, p * (vd)((vl)tab + e));
}
#else
AI vd vexp(vd x) {
    const vd shift = vsplat(0x1.8p52);
    vl tiny = (vl)(x < vsplat(-708.0));
    vd xc = vsel(tiny, vsplat(-708.0), x);
    vd t = xc * vsplat(1.4426950408889634074) + shift; /* round(x / ln2) in low bits */
    vd n = t - shift;
    vd r = xc - n * vsplat(0x1.62e42fefa3800p-1); /* ln2 high part: exact product */
    r = r - n * vsplat(0x1.ef35793c76730p-45);    /* ln2 low part */
    vd p = vsplat(1.0 / 479001600.0);
    p = p * r + vsplat(1.0 / 39916800.0);
    p = p * r + vsplat(1.0 / 3628800.0);
    p = p * r + vsplat(1.0 / 362880.0);
    p = p * r + vsplat(1.0 / 40320.0);
    p = p * r + vsplat(1.0 / 5040.0);
    p = p * r + vsplat(1.0 / 720.0);
    p = p * r + vsplat(1.0 / 120.0);
    p = p * r + vsplat(1.0 / 24.0);
    p = p * r + vsplat(1.0 / 6.0);
    p = p * r + vsplat(0.5);
    p = p * r + vsplat(1.0);
    p = p * r + vsplat(1.0);
    vl bits = ((vl)t + lsplat(1023)) << 52; /* (n + 1023) << 52 = 2^n */
    return vand(~tiny, p * (vd)bits);
}
#endif

/*
 * expm1 for x <= 0 (relative accuracy also near 0, where exp(x) - 1 would cancel):
 * x = n ln2 + r, |r| <= ln2/2, expm1(r) = r + r^2 (1/2! + r/3! + ... + r^11/13!)
 * (truncation < 2^-56 relative), then 2^n expm1(r) + (2^n - 1). x < -40 gives -1.
 */
AI vd vexpm1(vd x) {
    const vd shift = vsplat(0x1.8p52);
    vd xc = vsel((vl)(x < vsplat(-40.0)), vsplat(-40.0), x);
    vd t = xc * vsplat(1.4426950408889634074) + shift;
    vd n = t - shift;
    vd r = xc - n * vsplat(0x1.62e42fefa3800p-1);
    r = r - n * vsplat(0x1.ef35793c76730p-45);
    vd p = vsplat(1.0 / 6227020800.0);
    p = p * r + vsplat(1.0 / 479001600.0);
    p = p * r + vsplat(1.0 / 39916800.0);
    p = p * r + vsplat(1.0 / 3628800.0);
    p = p * r + vsplat(1.0 / 362880.0);
    p = p * r + vsplat(1.0 / 40320.0);
    p = p * r + vsplat(1.0 / 5040.0);
    p = p * r + vsplat(1.0 / 720.0);
    p = p * r + vsplat(1.0 / 120.0);
    p = p * r + vsplat(1.0 / 24.0);
    p = p * r + vsplat(1.0 / 6.0);
    p = p * r + vsplat(0.5);
    vd q = r + (r * r) * p;
    vd s2 = (vd)(((vl)t + lsplat(1023)) << 52); /* 2^n, n in [-58, 0] */
    return s2 * q + (s2 - vsplat(1.0));
}

/*
 * log1p(h / 2) for h in [-1, 0], i.e. log((1 + t) / 2) with t = 1 + h in [0, 1]: the log
 * the Jensen-Shannon pass needs. log s = 2 atanh(z), z = (s - 1) / (s + 1): for
 * t >= sqrt2 - 1, z = h / (4 + h) in [-0.172, 0]; below, log s = -ln2 + log(1 + t) with
 * z = t / (2 + t) in [0, 0.172] (t = 1 + h is exact there). atanh(z) = z + z^3 (1/3 +
 * z^2/5 + ... + z^18/21): truncation < 2.4e-17 relative (z^2 < 0.0295). One division, no
 * table; relative accuracy near h = 0, and exactly 0 at h = 0.
 */
AI vd vlog1p_half(vd h) {
    vd t = vsplat(1.0) + h;
    vl small = (vl)(t < vsplat(0.41421356237309503));
    vd num = vsel(small, t, h);
    vd den = vsel(small, vsplat(2.0) + t, vsplat(4.0) + h);
    vd z = num / den;
    vd w = z * z;
    vd p = vsplat(1.0 / 21.0);
    p = p * w + vsplat(1.0 / 19.0);
    p = p * w + vsplat(1.0 / 17.0);
    p = p * w + vsplat(1.0 / 15.0);
    p = p * w + vsplat(1.0 / 13.0);
    p = p * w + vsplat(1.0 / 11.0);
    p = p * w + vsplat(1.0 / 9.0);
    p = p * w + vsplat(1.0 / 7.0);
    p = p * w + vsplat(1.0 / 5.0);
    p = p * w + vsplat(1.0 / 3.0);
    vd z2 = z + z;
    vd r = z2 + z2 * (w * p);
    /* -ln2 as high + low parts */
    return vand(small, vsplat(-0x1.62e42fefa39efp-1)) +
           (r + vand(small, vsplat(-0x1.abc9e3b39803fp-56)));
}

AI double elem(const void *base, npy_intp k, int kind) {
    switch (kind) {
    case K_F32: return (double)((const float *)base)[k];
    case K_BF16: return bf16_to_double(((const uint16_t *)base)[k]);
    case K_F16: return f16_to_double(((const uint16_t *)base)[k]);
    default: return ((const double *)base)[k];
    }
}

/* Row maximum (raw; NaN if the row holds one) and, if want_idx, the first index of it. */
AI double row_max(const void *base, npy_intp v, int kind, int want_idx, int64_t *idx) {
    const vd ninf = vsplat(-INFINITY);
    vd mx = ninf;
    vl ix = lsplat(INT64_MAX), nan = lsplat(0);
    vl lane = (vl){0, 1, 2, 3, 4, 5, 6, 7};
    npy_intp i = 0;
    for (; i + W <= v; i += W) {
        vd x = vload(base, i, kind);
        vl gt = (vl)(x > mx);
        mx = vsel(gt, x, mx);
        if (want_idx) ix = lsel(gt, lane + lsplat(i), ix);
        nan |= (vl)(x != x);
    }
    if (i < v) { /* tail, padded with -inf */
        double tail[W];
        for (int j = 0; j < W; j++) {
            npy_intp k = i + j;
            tail[j] = k < v ? elem(base, k, kind) : -INFINITY;
        }
        vd x = load_f64(tail);
        vl gt = (vl)(x > mx);
        mx = vsel(gt, x, mx);
        if (want_idx) ix = lsel(gt, lane + lsplat(i), ix);
        nan |= (vl)(x != x);
    }
    double m = mx[0];
    for (int j = 1; j < W; j++) m = mx[j] > m ? mx[j] : m;
    if (want_idx) {
        int64_t best = INT64_MAX;
        for (int j = 0; j < W; j++)
            if (mx[j] == m && ix[j] < best) best = ix[j];
        *idx = best == INT64_MAX ? 0 : best;
    }
    if (hor(nan)) return NAN;
    return m;
}


AI int64_t count_gt(const void *base, npy_intp v, int kind, npy_intp t) {
    int64_t c = 0;
    if (kind == K_F32) {
        const float *p = (const float *)base;
        float at = p[t];
        for (npy_intp i = 0; i < v; i++) c += p[i] > at;
    } else if (kind == K_F64) {
        const double *p = (const double *)base;
        double at = p[t];
        for (npy_intp i = 0; i < v; i++) c += p[i] > at;
    } else { /* half precision: widening is monotone, so compare the widened values */
        double at = elem(base, t, kind);
        for (npy_intp i = 0; i < v; i++) c += elem(base, i, kind) > at;
    }
    return c;
}

/* One input: sum exp(x), sum exp(x) x. */
AI void pass_one(const void *a, npy_intp v, int kind, double m, double *z, double *s) {
    const vd ninf = vsplat(-INFINITY), mv = vsplat(m);
    vd za = vsplat(0.0), sa = vsplat(0.0);
    npy_intp i = 0;
    for (; i + W <= v; i += W) {
        vd av = vload(a, i, kind);
        vd x = av - mv;
        vl fa = (vl)(x != ninf);
        vd u = vexp(x);
        za += u;
        sa += vand(fa, u * x);
    }
    if (i < v) {
        double ta[W];
        for (int j = 0; j < W; j++) ta[j] = i + j < v ? elem(a, i + j, kind) : -INFINITY;
        vd av = load_f64(ta);
        vd x = av - mv;
        vl fa = (vl)(x != ninf);
        vd u = vexp(x);
        za += u;
        sa += vand(fa, u * x);
    }
    *z = hsum(za);
    *s = hsum(sa);
}



AI void pass_two(const void *a, const void *b, npy_intp v, int kind, double m_a, double m_b,
                 int scaled, double sc, Sums2 *o) {
    const vd ninf = vsplat(-INFINITY), ma = vsplat(m_a), mb = vsplat(m_b), scv = vsplat(sc);
    vd za = vsplat(0.0), zb = za, sa = za, sb = za, sud = za, svd = za;
    vl mpq = lsplat(0), mqp = lsplat(0);
    npy_intp i = 0;
    for (; i + W <= v; i += W) {
        vd av = vload(a, i, kind), bv = vload(b, i, kind);
        TWO_BODY;
    }
    if (i < v) {
        double ta[W], tb[W];
        for (int j = 0; j < W; j++) {
            ta[j] = i + j < v ? elem(a, i + j, kind) : -INFINITY;
            tb[j] = i + j < v ? elem(b, i + j, kind) : -INFINITY;
        }
        vd av = load_f64(ta), bv = load_f64(tb);
        TWO_BODY;
    }
    o->za = hsum(za);
    o->zb = hsum(zb);
    o->sa = hsum(sa);
    o->sb = hsum(sb);
    o->sud = hsum(sud);
    o->svd = hsum(svd);
    o->miss_pq = hor(mpq) != 0;
    o->miss_qp = hor(mqp) != 0;
}

/*
 * Jensen-Shannon, once Z_a and Z_b are known: with p = u / Z_a, q = w / Z_b and
 * D = log q - log p = (y - x) + c, c = log Z_a - log Z_b,
 *   p log(p/m) + q log(q/m) = -[(p + q) L + min(p, q) |D|],  L = log1p(expm1(-|D|) / 2)
 * (min taken by the sign of D). L never overflows and is exactly 0 at D = 0. Where one
 * side is -inf, |D| stands in as JS_BIG (L = -ln2) and min(p, q) = 0. JS = -sum / 2.
 */
#define JS_BIG 1000.0
AI double pass_js(const void *a, const void *b, npy_intp v, int kind, double m_a, double m_b,
                  double ia, double ib, double c) {
    const vd ninf = vsplat(-INFINITY), ma = vsplat(m_a), mb = vsplat(m_b);
    const vd iav = vsplat(ia), ibv = vsplat(ib), cv = vsplat(c);
    vd acc = vsplat(0.0);
    npy_intp i = 0;
#define JS_BODY                                                                            \
    do {                                                                                   \
        vd x = av - ma, y = bv - mb;                                                       \
        vl both = (vl)(x != ninf) & (vl)(y != ninf);                                       \
        vd p = vexp(x) * iav, q = vexp(y) * ibv;                                           \
        vd d = (y - x) + cv;                                                               \
        vd lo = vand(both, vsel((vl)(d > vsplat(0.0)), p, q));                             \
        vd ad = vsel(both, (vd)((vl)d & lsplat(INT64_MAX)), vsplat(JS_BIG));               \
        acc += (p + q) * vlog1p_half(vexpm1(-ad)) + lo * ad;                               \
    } while (0)
    for (; i + W <= v; i += W) {
        vd av = vload(a, i, kind), bv = vload(b, i, kind);
        JS_BODY;
    }
    if (i < v) {
        double ta[W], tb[W];
        for (int j = 0; j < W; j++) {
            ta[j] = i + j < v ? elem(a, i + j, kind) : -INFINITY;
            tb[j] = i + j < v ? elem(b, i + j, kind) : -INFINITY;
        }
        vd av = load_f64(ta), bv = load_f64(tb);
        JS_BODY;
    }
#undef JS_BODY
    double js = -0.5 * hsum(acc);
    /* in [0, ln 2] by definition (also maps -0.0 of identical rows to +0.0) */
    js = js > 0.0 ? js : 0.0;
    return js < 0x1.62e42fefa39efp-1 ? js : 0x1.62e42fefa39efp-1;
}

AI int bad_max(double m) { return !(m > -INFINITY && m < INFINITY); }

AI void do_rows(Job *j, npy_intp lo, npy_intp hi, const int kind) {
    const npy_intp v = j->v;
    const size_t es = kind == K_F64 ? 8 : kind == K_F32 ? 4 : 2;
    for (npy_intp r = lo; r < hi; r++) {
        const char *a = (const char *)j->a + (size_t)r * v * es;
        const char *b = j->b ? (const char *)j->b + (size_t)r * v * es : NULL;
        /* log p_t = (a_t - m) - log Z, never (a_t - lse): lse = m + log Z rounds to m when
         * |m| is huge (1e308 + ln 2 == 1e308) */
        if (!b) {
            double m = row_max(a, v, kind, 0, NULL);
            j->max_p[r] = m;
            double lse = NAN, h = NAN, lz = NAN;
            if (!bad_max(m)) {
                double z, s;
                pass_one(a, v, kind, m, &z, &s);
                lz = log(z);
                lse = m + lz;
                h = lz - s / z;
            }
            j->lse_p[r] = lse;
            j->ent_p[r] = h;
            if (j->t) {
                npy_intp t = (npy_intp)j->t[r];
                j->sur_p[r] = lz - (elem(a, t, kind) - m);
                if (j->rank) j->rk_p[r] = 1 + count_gt(a, v, kind, t);
            }
            continue;
        }
        int64_t ia = 0, ib = 0;
        double m_a = row_max(a, v, kind, 1, &ia);
        double m_b = row_max(b, v, kind, 1, &ib);
        j->max_p[r] = m_a;
        j->max_q[r] = m_b;
        j->am_p[r] = ia;
        j->am_q[r] = ib;
        double lza = NAN, lzb = NAN;
        if (bad_max(m_a) || bad_max(m_b)) {
            j->lse_p[r] = j->ent_p[r] = j->lse_q[r] = j->ent_q[r] = NAN;
            j->kl_pq[r] = j->kl_qp[r] = j->ce_pq[r] = j->ce_qp[r] = NAN;
            if (j->js) j->js_pq[r] = NAN;
        } else {
            Sums2 s;
            pass_two(a, b, v, kind, m_a, m_b, 0, 1.0, &s);
            lza = log(s.za);
            lzb = log(s.zb);
            /* E_p[x - y] and E_q[x - y]: each |d| < 2^1024, so the means are in range, but a
             * sum of several huge terms can overflow (logits near +-1e308). Then the row is
             * summed again with d scaled by 2^-k < 1/V (exact), whose sums cannot overflow. */
            double mud = s.sud / s.za, mwd = s.svd / s.zb;
            if ((!s.miss_pq && !isfinite(mud)) || (!s.miss_qp && !isfinite(mwd))) {
                int k;
                (void)frexp((double)v, &k); /* v < 2^k */
                Sums2 t2;
                pass_two(a, b, v, kind, m_a, m_b, 1, ldexp(1.0, -k), &t2);
                /* divide first, then scale by the exact power of two: one rounding less,
                 * so a mean just below the float64 maximum does not round over it */
                mud = ldexp(t2.sud / s.za, k);
                mwd = ldexp(t2.svd / s.zb, k);
                /* a mean of finite values is finite: past the maximum is rounding */
                if (isinf(mud)) mud = copysign(DBL_MAX, mud);
                if (isinf(mwd)) mwd = copysign(DBL_MAX, mwd);
            }
            j->lse_p[r] = m_a + lza;
            j->lse_q[r] = m_b + lzb;
            j->ent_p[r] = lza - s.sa / s.za;
            j->ent_q[r] = lzb - s.sb / s.zb;
            /* divergences are >= 0; rounding can leave -1e-16 for (nearly) equal rows */
            j->kl_pq[r] = s.miss_pq ? INFINITY : fmax(mud + lzb - lza, 0.0);
            j->kl_qp[r] = s.miss_qp ? INFINITY : fmax(-mwd + lza - lzb, 0.0);
            /* without a support mismatch, sum_{both finite} u y = sum u x - sum u d */
            j->ce_pq[r] = s.miss_pq ? INFINITY : lzb - s.sa / s.za + mud;
            j->ce_qp[r] = s.miss_qp ? INFINITY : lza - s.sb / s.zb - mwd;
            if (j->js)
                j->js_pq[r] = pass_js(a, b, v, kind, m_a, m_b, 1.0 / s.za, 1.0 / s.zb, lza - lzb);
        }
        if (j->t) {
            npy_intp t = (npy_intp)j->t[r];
            j->sur_p[r] = lza - (elem(a, t, kind) - m_a);
            j->sur_q[r] = lzb - (elem(b, t, kind) - m_b);
            if (j->rank) {
                j->rk_p[r] = 1 + count_gt(a, v, kind, t);
                j->rk_q[r] = 1 + count_gt(b, v, kind, t);
            }
        }
    }
}

/*
 * Quantisation for entropy coding (quantize_rows): every row's distribution softmax(a) as
 * integer frequencies f_i >= 1 with sum f_i = 2^P, written as the free weights f_i - 1
 * (float32, exact below 2^24). The integers must be the same whichever copy of this
 * kernel runs (AVX-512, AVX2, baseline) and however rows are split across threads, so
 * this part is compiled without floating-point contraction (no fused multiply-add: its
 * single rounding would differ from the baseline's two) and uses one exp for all copies
 * (the baseline's Cody-Waite + degree-12 polynomial, below), with every sum in a fixed
 * order: 8 lane accumulators over the row in order, padded with zeros at the tail, then
 * the fixed pairwise lane sum. IEEE-754 +, -, * and / are correctly rounded, so each lane
 * gives the same bits on every x86-64 (or other IEEE) machine:
 *   m = max a, u_i = qexp(a_i - m), Z = sum u_i, s = (2^P - V) / Z,
 *   w_i = trunc(u_i s), and 2^P - V - sum w_i (in 0..V) goes to the first i with a_i = m.
 */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#define QV(x) ((vd){(x), (x), (x), (x), (x), (x), (x), (x)})
#define QL(x) ((vl){(x), (x), (x), (x), (x), (x), (x), (x)})
static inline vd KN(qexp)(vd x) {
    vl tiny = (vl)(x < QV(-708.0));
    vd xc = (vd)((tiny & (vl)QV(-708.0)) | (~tiny & (vl)x));
    vd t = xc * QV(1.4426950408889634074);
    t = t + QV(0x1.8p52);
    vd n = t - QV(0x1.8p52);
    vd hi = n * QV(0x1.62e42fefa3800p-1);
    vd r = xc - hi;
    vd lo = n * QV(0x1.ef35793c76730p-45);
    r = r - lo;
    static const double c[13] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                                 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
    vd p = QV(c[0]);
    for (int k = 1; k < 13; k++) {
        p = p * r;
        p = p + QV(c[k]);
    }
    vl bits = ((vl)t + QL(1023)) << 52;
    vd y = p * (vd)bits;
    return (vd)(~tiny & (vl)y);
}

static inline vd KN(qload)(const void *a, npy_intp i, npy_intp v, int kind) {
    if (i + W <= v) {
        switch (kind) {
        case K_F32: { vf r; memcpy(&r, (const float *)a + i, sizeof r); return __builtin_convertvector(r, vd); }
        case K_BF16: { vh h; memcpy(&h, (const uint16_t *)a + i, sizeof h); vu u = __builtin_convertvector(h, vu) << 16; return __builtin_convertvector((vf)u, vd); }
        case K_F16: { vd r; for (int k = 0; k < W; k++) r[k] = f16_to_double(((const uint16_t *)a)[i + k]); return r; }
        default: { vd r; memcpy(&r, (const double *)a + i, sizeof r); return r; }
        }
    }
    vd r = QV(-INFINITY); /* the tail: padding lanes are p = 0 */
    for (npy_intp k = 0; i + k < v; k++) {
        switch (kind) {
        case K_F32: r[k] = ((const float *)a)[i + k]; break;
        case K_BF16: r[k] = bf16_to_double(((const uint16_t *)a)[i + k]); break;
        case K_F16: r[k] = f16_to_double(((const uint16_t *)a)[i + k]); break;
        default: r[k] = ((const double *)a)[i + k]; break;
        }
    }
    return r;
}

/* one row; returns 0, or 1 for a NaN / +inf / all -inf row */
static int KN(quant_row)(const void *a, npy_intp v, int kind, int prec, float *out) {
    double m = -INFINITY;
    npy_intp best = -1;
    for (npy_intp i = 0; i < v; i += W) {
        vd x = KN(qload)(a, i, v, kind);
        for (int k = 0; k < W && i + k < v; k++) {
            double e = x[k];
            if (e != e || e == INFINITY) return 1;
            if (e > m) {
                m = e;
                best = i + k;
            }
        }
    }
    if (best < 0) return 1;
    vd acc = QV(0.0);
    for (npy_intp i = 0; i < v; i += W) acc = acc + KN(qexp)(KN(qload)(a, i, v, kind) - QV(m));
    double s0 = (acc[0] + acc[4]) + (acc[2] + acc[6]);
    double s1 = (acc[1] + acc[5]) + (acc[3] + acc[7]);
    double z = s0 + s1;
    const int64_t free_total = ((int64_t)1 << prec) - (int64_t)v;
    vd sc = QV((double)free_total / z);
    int64_t sum = 0;
    for (npy_intp i = 0; i < v; i += W) {
        vd u = KN(qexp)(KN(qload)(a, i, v, kind) - QV(m));
        vd y = u * sc;
        vl w = __builtin_convertvector(y, vl);
        for (int k = 0; k < W && i + k < v; k++) {
            out[i + k] = (float)w[k];
            sum += w[k];
        }
    }
    out[best] += (float)(free_total - sum);
    return 0;
}
#undef QV
#undef QL
#pragma GCC pop_options

static void KN(quant)(Job *j, npy_intp lo, npy_intp hi) {
    for (npy_intp r = lo; r < hi; r++) {
        const char *a = (const char *)j->a + r * j->v * (j->kind == K_F64 ? 8 : j->kind == K_F32 ? 4 : 2);
        if (KN(quant_row)(a, j->v, j->kind, j->qprec, j->qout + r * j->v))
            __atomic_store_n(&j->qbad, r + 1, __ATOMIC_RELAXED);
    }
}

/* one specialised copy of the row loop per element kind */
static void KN(rows)(Job *j, npy_intp lo, npy_intp hi) {
    switch (j->kind) {
    case K_F32: do_rows(j, lo, hi, K_F32); break;
    case K_BF16: do_rows(j, lo, hi, K_BF16); break;
    case K_F16: do_rows(j, lo, hi, K_F16); break;
    default: do_rows(j, lo, hi, K_F64); break;
    }
}

#undef vsplat
#undef lsplat
#undef vand
#undef vsel
#undef lsel
#undef load_f64
#undef load_f32
#undef load_bf16
#undef load_f16
#undef vload
#undef hsum
#undef hor
#undef vexp
#undef vexpm1
#undef vlog1p_half
#undef pass_js
#undef row_max
#undef elem
#undef count_gt
#undef pass_one
#undef pass_two
#undef bad_max
#undef do_rows
#undef KN
#undef KN1
#undef KN2
#endif /* INFOLENS_KERNEL */
