/* huffman_decode: streams are built here with a tiny canonical encoder, so the
 * decoder is checked against the symbols that went in; corrupt streams must
 * return ER_ERR_CORRUPT without reading outside data (run with SANITIZE=1). */
#include "harness.h"

#define OP "huffman_decode"

/* Canonical codes of lengths, in (length, symbol) order (as csrc/edgerun.h). */
static void canonical_codes(const uint8_t *lengths, uint32_t *codes) {
    uint32_t code = 0;
    int previous = 0;
    for (int len = 1; len <= ER_HUFFMAN_MAX_BITS; len++)
        for (int s = 0; s < 256; s++)
            if (lengths[s] == len) {
                code <<= len - previous;
                codes[s] = code++;
                previous = len;
            }
}

/* Writes the codes of symbols MSB-first into out (zeroed, large enough);
 * returns the number of bits. */
static size_t encode(const uint8_t *lengths, const uint8_t *symbols, size_t n, uint8_t *out) {
    uint32_t codes[256] = {0};
    canonical_codes(lengths, codes);
    size_t bit = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned len = lengths[symbols[i]];
        for (unsigned t = 0; t < len; t++, bit++)
            if ((codes[symbols[i]] >> (len - 1 - t)) & 1u) out[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
    }
    return bit;
}

/* Random complete code with `leaves` symbols: split random leaves of a binary
 * tree; deep=1 keeps splitting the deepest leaf to reach long codes. */
static void random_lengths(uint8_t *lengths, int leaves, int deep, uint8_t *used) {
    uint8_t depth[256];
    int count = 1;
    depth[0] = 0;
    while (count < leaves) {
        int pick = deep ? count - 1 : h_randint(0, count - 1);
        if (depth[pick] >= ER_HUFFMAN_MAX_BITS) pick = h_randint(0, count - 1);
        if (depth[pick] >= ER_HUFFMAN_MAX_BITS) continue;
        depth[pick]++;
        depth[count++] = depth[pick];
    }
    if (leaves == 1) depth[0] = 1;
    memset(lengths, 0, 256);
    uint8_t perm[256];
    for (int i = 0; i < 256; i++) perm[i] = (uint8_t)i;
    for (int i = 255; i > 0; i--) { /* shuffle: symbols are not the tree order */
        int j = h_randint(0, i);
        uint8_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int i = 0; i < leaves; i++) lengths[perm[i]] = depth[i], used[i] = perm[i];
}

static er_status run(const er_variant *v, const uint8_t *lengths, const uint8_t *data, size_t n_bytes,
                     uint8_t *out, size_t n_out) {
    return ((er_huffman_decode_fn *)v->fn)(lengths, data, n_bytes, out, n_out);
}

/* Round trip of n random symbols, then every shortened stream must fail. */
static void round_trip(const er_variant *const *v, size_t nv, int leaves, int deep, size_t n) {
    uint8_t lengths[256], used[256];
    random_lengths(lengths, leaves, deep, used);
    uint8_t *symbols = h_alloc(n);
    for (size_t i = 0; i < n; i++) symbols[i] = used[h_randint(0, leaves - 1)];
    uint8_t *buffer = h_alloc(n * 2 + 1);
    size_t bits = encode(lengths, symbols, n, buffer);
    size_t n_bytes = (bits + 7) / 8;
    uint8_t *data = h_alloc(n_bytes); /* exact size: ASan catches any overread */
    memcpy(data, buffer, n_bytes);
    uint8_t *out = h_alloc(n + 8 * n_bytes + 1);
    char what[96];
    for (size_t i = 0; i < nv; i++) {
        snprintf(what, sizeof what, "round trip leaves=%d deep=%d n=%zu", leaves, deep, n);
        h_check(run(v[i], lengths, data, n_bytes, out, n) == ER_OK && h_same_bytes(out, symbols, n), OP,
                v[i]->variant, what);
        if (n_bytes > 0) {
            snprintf(what, sizeof what, "early end leaves=%d n=%zu", leaves, n);
            h_check(run(v[i], lengths, data, n_bytes - 1, out, n) == ER_ERR_CORRUPT, OP, v[i]->variant, what);
            /* asking for more symbols than the stream holds: corrupt unless the
             * zero padding happens to spell a whole code of the last byte */
            er_status st = run(v[i], lengths, data, n_bytes, out, n + 8 * n_bytes + 1);
            h_check(st == ER_ERR_CORRUPT, OP, v[i]->variant, "more symbols than bits");
        }
    }
    free(symbols), free(buffer), free(data), free(out);
}

/* Random bytes under random lengths: any status but OK/CORRUPT is a bug, and
 * the sanitizer checks the reads. */
static void garbage(const er_variant *const *v, size_t nv, size_t n_bytes, size_t n_out) {
    uint8_t lengths[256], used[256];
    random_lengths(lengths, h_randint(1, 256), h_randint(0, 1), used);
    if (h_randint(0, 1)) lengths[h_randint(0, 255)] = 0; /* often incomplete */
    uint8_t *data = h_alloc(n_bytes), *out = h_alloc(n_out);
    for (size_t i = 0; i < n_bytes; i++) data[i] = (uint8_t)h_rand();
    for (size_t i = 0; i < nv; i++) {
        er_status st = run(v[i], lengths, data, n_bytes, out, n_out);
        h_check(st == ER_OK || st == ER_ERR_CORRUPT, OP, v[i]->variant, "garbage: OK or CORRUPT");
    }
    free(data), free(out);
}

void test_huffman_decode(void) {
    const er_variant *v[8];
    size_t nv = h_variants(OP, v, 8);
    h_check(nv >= 1 && strcmp(v[0]->variant, "scalar") == 0, OP, "scalar", "scalar variant exists");

    static const int leaves[] = {1, 2, 3, 17, 100, 255, 256};
    static const size_t sizes[] = {1, 2, 7, 64, 1000, 20000};
    for (size_t a = 0; a < sizeof leaves / sizeof leaves[0]; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++)
            for (int deep = 0; deep <= 1; deep++) round_trip(v, nv, leaves[a], deep, sizes[b]);

    for (size_t i = 0; i < nv; i++) {
        const char *name = v[i]->variant;
        uint8_t lengths[256] = {0}, out[16];
        /* one symbol of length 1: code 0; a 1 bit matches nothing */
        lengths[42] = 1;
        uint8_t zeros[2] = {0, 0}, ones[1] = {0x80};
        h_check(run(v[i], lengths, zeros, 2, out, 16) == ER_OK && out[0] == 42 && out[15] == 42, OP, name,
                "single symbol");
        h_check(run(v[i], lengths, ones, 1, out, 1) == ER_ERR_CORRUPT, OP, name, "unused pattern");
        h_check(run(v[i], lengths, zeros, 1, out, 9) == ER_ERR_CORRUPT, OP, name, "9 symbols in 8 bits");
        h_check(run(v[i], lengths, NULL, 0, out, 0) == ER_OK, OP, name, "n_out = 0");
        h_check(run(v[i], lengths, NULL, 0, out, 1) == ER_ERR_CORRUPT, OP, name, "empty stream");
        /* over-subscribed: three codes of length 1 */
        lengths[1] = 1, lengths[2] = 1;
        h_check(run(v[i], lengths, zeros, 2, out, 1) == ER_ERR_CORRUPT, OP, name, "over-subscribed");
        /* over-subscribed only at the last length: 2^16 + 1 leaves */
        memset(lengths, 16, 256);
        lengths[0] = 1, lengths[1] = 2, lengths[2] = 3, lengths[3] = 4, lengths[4] = 5, lengths[5] = 6;
        lengths[6] = 7, lengths[7] = 8; /* 1/2 + ... + 1/256 + 248/65536 <= 1: complete? */
        h_check(run(v[i], lengths, zeros, 2, out, 1) == ER_OK, OP, name, "deep but valid lengths");
        lengths[8] = 1;
        h_check(run(v[i], lengths, zeros, 2, out, 1) == ER_ERR_CORRUPT, OP, name, "over-subscribed deep");
        memset(lengths, 0, 256);
        lengths[9] = 17;
        h_check(run(v[i], lengths, zeros, 2, out, 1) == ER_ERR_CORRUPT, OP, name, "length 17");
        h_check(run(v[i], NULL, zeros, 2, out, 1) == ER_ERR_ARGUMENT, OP, name, "NULL lengths");
        lengths[9] = 1;
        h_check(run(v[i], lengths, NULL, 2, out, 1) == ER_ERR_ARGUMENT, OP, name, "NULL data");
        h_check(run(v[i], lengths, zeros, 2, NULL, 1) == ER_ERR_ARGUMENT, OP, name, "NULL out");
    }
    for (int r = 0; r < 300; r++) garbage(v, nv, (size_t)h_randint(0, 40), (size_t)h_randint(0, 400));
}
