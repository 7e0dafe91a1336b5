/* dlib's shape-predictor cascade (faces/shape_model.py) in C: the same arithmetic as the numpy
 * evaluator, step for step, so the points are the same bits (tests/faces/test_shape_model.py).
 *
 * The numpy evaluator spends most of a call on ~35 small array steps per cascade; this runs them
 * as plain loops, without the GIL. Built by `pip install` (pyproject.toml, ext-modules, optional):
 * where no C compiler is found the numpy evaluator runs alone.
 *
 * Floating point, as numpy computes it:
 *  - the shape's mean and its covariance with the mean shape in double (then float32);
 *  - the offsets' similarity transform in float32 as OpenBLAS's sgemm does a 2-term product,
 *    fmaf(d1, s1, d0 * s0);
 *  - the feature pixel positions in double, floored;
 *  - the leaves added to the shape in float32, tree after tree.
 * Built with -ffp-contract=off: no other multiply-add is fused.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AHEAD 4 /* trees ahead that a leaf is prefetched */

/* GCC 12+ on x86-64 Linux: `run_face` is compiled for AVX-512 and AVX2 machines beside the baseline one, and
 * the loader picks the clone the CPU runs (an ifunc). With -O3 the leaves' sums and the feature pixels'
 * arithmetic then use the wide registers, and fmaf and floor are single instructions instead of libm calls:
 * 0.60 against 0.95 ms a face here (the same bits: each element's operations are the same, and
 * -ffp-contract=off still fuses nothing the C does not). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define CLONED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONED
#endif

typedef struct {
    const float *initial;     /* (K2) mean shape, normalized to the box */
    const intptr_t *idx12;    /* (C, 2 * T * S): both pixels of every split */
    const float *thresh;      /* (C, T * S) */
    const float *leaves;      /* (C, T * (S + 1), K2) */
    const intptr_t *anchors;  /* (C, P) */
    const float *deltas;      /* (C, P, 2) */
    const double *mean_centred; /* (K, 2) */
    Py_ssize_t cascades, trees, splits, pixels, k2;
} Model;

/* One face: `shape` (K2 float32) from the initial shape through every cascade. */
CLONED static void run_face(const Model *m, const uint8_t *frame, Py_ssize_t width, Py_ssize_t channels,
                     const int64_t *corner, const int64_t *extent, const double *size, const double *offset,
                     float *shape, float *value, const float **leaf_at) {
    const Py_ssize_t points = m->k2 / 2, leaf_rows = m->splits + 1;
    const int64_t first = corner[1] * (int64_t)width + corner[0];
    memcpy(shape, m->initial, sizeof(float) * m->k2);
    for (Py_ssize_t c = 0; c < m->cascades; c++) {
        double mx = 0.0, my = 0.0;
        for (Py_ssize_t k = 0; k < points; k++) {
            mx += (double)shape[2 * k];
            my += (double)shape[2 * k + 1];
        }
        mx /= (double)points;
        my /= (double)points;
        double c00 = 0.0, c01 = 0.0, c10 = 0.0, c11 = 0.0;
        for (Py_ssize_t k = 0; k < points; k++) {
            const double x = (double)shape[2 * k] - mx, y = (double)shape[2 * k + 1] - my;
            const double u = m->mean_centred[2 * k], v = m->mean_centred[2 * k + 1];
            c00 += x * u;
            c01 += x * v;
            c10 += y * u;
            c11 += y * v;
        }
        /* the transposed similarity [[a, b], [-b, a]] as float32 */
        const float a = (float)(c00 + c11), b = (float)(c10 - c01), nb = -b;
        const float *deltas = m->deltas + c * m->pixels * 2;
        const intptr_t *anchors = m->anchors + c * m->pixels;
        for (Py_ssize_t p = 0; p < m->pixels; p++) {
            const float d0 = deltas[2 * p], d1 = deltas[2 * p + 1];
            float ax = fmaf(d1, nb, d0 * a), ay = fmaf(d1, a, d0 * b);
            ax += shape[2 * anchors[p]];
            ay += shape[2 * anchors[p] + 1];
            const int64_t x = (int64_t)floor((double)ax * size[0] + offset[0]);
            const int64_t y = (int64_t)floor((double)ay * size[1] + offset[1]);
            float v = 0.0f;
            if ((uint64_t)x < (uint64_t)extent[0] && (uint64_t)y < (uint64_t)extent[1]) {
                const uint8_t *px = frame + (first + y * (int64_t)width + x) * channels;
                v = (float)(((int32_t)px[0] + (int32_t)px[1] + (int32_t)px[2]) / 3);
            }
            value[p] = v;
        }
        const intptr_t *idx1 = m->idx12 + c * 2 * m->trees * m->splits;
        const intptr_t *idx2 = idx1 + m->trees * m->splits;
        const float *thresh = m->thresh + c * m->trees * m->splits;
        const float *leaves = m->leaves + c * m->trees * leaf_rows * m->k2;
        /* every tree's leaf first, then their sum: the leaves' loads (4 MB a call for 68 points, out of
         * cache) are known ahead and fetched a few trees before they are added */
        for (Py_ssize_t t = 0; t < m->trees; t++) {
            const Py_ssize_t base = t * m->splits;
            Py_ssize_t node = 0;
            while (node < m->splits) {
                const Py_ssize_t s = base + node;
                node = (value[idx1[s]] - value[idx2[s]] > thresh[s]) ? 2 * node + 1 : 2 * node + 2;
            }
            leaf_at[t] = leaves + (t * leaf_rows + node - m->splits) * m->k2;
        }
        for (Py_ssize_t t = 0; t < m->trees; t++) {
            if (t + AHEAD < m->trees)
                for (Py_ssize_t j = 0; j < m->k2; j += 16)
                    __builtin_prefetch(leaf_at[t + AHEAD] + j);
            const float *leaf = leaf_at[t];
            for (Py_ssize_t j = 0; j < m->k2; j++)
                shape[j] += leaf[j];
        }
    }
}

/* A buffer argument: C-contiguous, of `itemsize`-byte items, at least `items` of them. */
static int take(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t items, int writable,
                const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len < items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes of %zd-byte items; need %zd items of %zd bytes",
                     name, view->len, view->itemsize, items, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *run(PyObject *self, PyObject *args) {
    PyObject *o[13];
    Py_ssize_t width, channels, height, faces, cascades, trees, splits, pixels, k2;
    if (!PyArg_ParseTuple(args, "O" "nnn" "OOOOOOOOOOOO" "nnnnnn", &o[0], &width, &height, &channels, &o[1], &o[2],
                          &o[3], &o[4], &o[5], &o[6], &o[7], &o[8], &o[9], &o[10], &o[11], &o[12], &faces,
                          &cascades, &trees, &splits, &pixels, &k2))
        return NULL;
    (void)self;
    if (channels < 3 || width < 0 || height < 0 || faces < 0 || cascades < 0 || trees < 0 || splits < 1 ||
        pixels < 1 || k2 < 2 || k2 % 2) {
        PyErr_SetString(PyExc_ValueError, "cascade: bad sizes");
        return NULL;
    }
    Py_buffer b[13];
    const struct { Py_ssize_t itemsize, items; int writable; const char *name; } spec[13] = {
        {1, width * height * channels, 0, "frame"},
        {8, faces * 2, 0, "corner"},
        {8, faces * 2, 0, "extent"},
        {8, faces * 2, 0, "size"},
        {8, faces * 2, 0, "offset"},
        {4, k2, 0, "initial"},
        {sizeof(intptr_t), cascades * 2 * trees * splits, 0, "idx12"},
        {4, cascades * trees * splits, 0, "thresh"},
        {4, cascades * trees * (splits + 1) * k2, 0, "leaves"},
        {sizeof(intptr_t), cascades * pixels, 0, "anchors"},
        {4, cascades * pixels * 2, 0, "deltas"},
        {8, k2, 0, "mean_centred"},
        {4, faces * k2, 1, "out"},
    };
    int got = 0;
    for (; got < 13; got++)
        if (take(o[got], &b[got], spec[got].itemsize, spec[got].items, spec[got].writable, spec[got].name) < 0)
            break;
    PyObject *result = NULL;
    float *value = NULL;
    const float **leaf_at = NULL;
    if (got == 13) {
        /* every split's pixel indices within the feature pool: checked once, so the loops trust them */
        const intptr_t *idx12 = b[6].buf, *anchors = b[9].buf;
        int bad = 0;
        for (Py_ssize_t i = 0; i < cascades * 2 * trees * splits; i++) bad |= idx12[i] < 0 || idx12[i] >= pixels;
        for (Py_ssize_t i = 0; i < cascades * pixels; i++) bad |= anchors[i] < 0 || anchors[i] >= k2 / 2;
        const int64_t *corner = b[1].buf, *extent = b[2].buf;
        for (Py_ssize_t f = 0; f < faces; f++)  /* the area read lies inside the frame */
            bad |= corner[2 * f] < 0 || corner[2 * f + 1] < 0 || extent[2 * f] < 0 || extent[2 * f + 1] < 0 ||
                   corner[2 * f] + extent[2 * f] > width || corner[2 * f + 1] + extent[2 * f + 1] > height;
        value = bad ? NULL : malloc(sizeof(float) * (size_t)pixels);
        leaf_at = bad ? NULL : malloc(sizeof(float *) * (size_t)(trees ? trees : 1));
        if (bad)
            PyErr_SetString(PyExc_ValueError, "cascade: an index or area lies outside its array");
        else if (value == NULL || leaf_at == NULL)
            PyErr_NoMemory();
        else {
            const Model m = {b[5].buf, b[6].buf, b[7].buf, b[8].buf, b[9].buf, b[10].buf, b[11].buf,
                             cascades, trees, splits, pixels, k2};
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t f = 0; f < faces; f++)
                run_face(&m, b[0].buf, width, channels, corner + 2 * f, extent + 2 * f,
                         (const double *)b[3].buf + 2 * f, (const double *)b[4].buf + 2 * f,
                         (float *)b[12].buf + f * k2, value, leaf_at);
            Py_END_ALLOW_THREADS
            result = Py_None;
            Py_INCREF(result);
        }
    }
    free(value);
    free((void *)leaf_at);
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&b[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(frame, width, height, channels, corner, extent, size, offset, initial, idx12, thresh, leaves, "
     "anchors, deltas, mean_centred, out, faces, cascades, trees, splits, pixels, k2): every face's shape "
     "through the cascades into `out`, as ShapeModel.many's numpy loop."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cascade", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cascade(void) { return PyModule_Create(&module); }
