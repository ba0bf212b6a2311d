/* int8 GEMM, y = epilogue(x @ w^T): the portable reference. */
#include "edgerun.h"
#include "epilogue.h"
#include "gemm_s8.h"

er_status er_gemm_s8__scalar(const int8_t *x, const int8_t *w, size_t m, size_t n,
                             size_t k, const er_epilogue *ep) {
    er_status status = er_gemm_s8_check(x, w, n, k, ep);
    if (status != ER_OK) return status;
    /* A local copy: built with -fno-strict-aliasing, each store into y could
     * change *ep, and its fields were reloaded for every output. */
    const er_epilogue e = *ep;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            er_store_s32(&e, i, j, er_gemm_s8_dot(x + i * k, w + j * k, 0, k));
    return ER_OK;
}
