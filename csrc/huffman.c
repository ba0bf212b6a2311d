/* Canonical Huffman decoding of byte streams: the portable reference (and the
 * only variant: decoding runs once per model load and is bound by the serial
 * dependency between codes, which SIMD does not break).
 *
 * Method: a primary table indexed by the next ER_HUFFMAN_FAST_BITS bits of the
 * stream gives (symbol, length) for every code of at most that many bits in one
 * lookup.  Longer codes -- rare by construction, since they belong to rare
 * symbols -- fall back to the canonical "first code per length" comparison on a
 * 16-bit window.  All tables live on the stack: no allocation. */
#include <string.h>

#include "edgerun.h"

/* 2^11 two-byte entries = 4 KiB: fits L1 beside the output, and covers every
 * code of realistic weight streams (index alphabets of <= 256 symbols whose
 * skew rarely pushes codes past 11 bits). */
#define ER_HUFFMAN_FAST_BITS 11
#define FAST_SIZE (1u << ER_HUFFMAN_FAST_BITS)

typedef struct {
    /* fast[w] = symbol << 5 | length for the code that prefixes the window w;
     * 0 when no code of <= FAST_BITS bits does (length is never 0 for a code). */
    uint16_t fast[FAST_SIZE];
    uint32_t first_code[ER_HUFFMAN_MAX_BITS + 1]; /* canonical first code of each length */
    uint16_t count[ER_HUFFMAN_MAX_BITS + 1];      /* number of codes of each length */
    uint16_t offset[ER_HUFFMAN_MAX_BITS + 1];     /* index in sorted[] of the first code */
    uint8_t sorted[256];                          /* symbols in (length, symbol) order */
} er_huffman_table;

/* Builds the tables; ER_ERR_CORRUPT when a length exceeds the maximum or the
 * lengths over-subscribe the code space (Kraft sum > 1).  An incomplete code
 * (Kraft sum < 1, e.g. one symbol of length 1) is legal: its unused patterns
 * are reported when met in the stream. */
static er_status build_table(const uint8_t *code_lengths, er_huffman_table *t) {
    memset(t->count, 0, sizeof t->count);
    for (int s = 0; s < 256; s++) {
        if (code_lengths[s] > ER_HUFFMAN_MAX_BITS) return ER_ERR_CORRUPT;
        t->count[code_lengths[s]]++;
    }
    t->count[0] = 0;
    int32_t left = 1; /* code space still free at the current length */
    for (int len = 1; len <= ER_HUFFMAN_MAX_BITS; len++) {
        left = left * 2 - t->count[len];
        if (left < 0) return ER_ERR_CORRUPT;
    }
    uint32_t code = 0;
    uint16_t index = 0;
    for (int len = 1; len <= ER_HUFFMAN_MAX_BITS; len++) {
        code = (code + t->count[len - 1]) << 1;
        t->first_code[len] = code;
        t->offset[len] = index;
        index += t->count[len];
    }
    uint16_t next[ER_HUFFMAN_MAX_BITS + 1];
    memcpy(next, t->offset, sizeof next);
    for (int s = 0; s < 256; s++)
        if (code_lengths[s]) t->sorted[next[code_lengths[s]]++] = (uint8_t)s;

    memset(t->fast, 0, sizeof t->fast);
    for (int len = 1; len <= ER_HUFFMAN_FAST_BITS; len++) {
        for (uint32_t i = 0; i < t->count[len]; i++) {
            uint32_t c = t->first_code[len] + i;
            uint32_t span = 1u << (ER_HUFFMAN_FAST_BITS - len);
            uint16_t entry = (uint16_t)(t->sorted[t->offset[len] + i] << 5 | len);
            for (uint32_t w = c * span; w < (c + 1) * span; w++) t->fast[w] = entry;
        }
    }
    return ER_OK;
}

/* The code of more than FAST_BITS bits that prefixes window (16 bits,
 * MSB-first); returns its length and stores its symbol, or 0 if none does. */
static unsigned decode_long(const er_huffman_table *t, uint32_t window, uint8_t *symbol) {
    for (unsigned len = ER_HUFFMAN_FAST_BITS + 1; len <= ER_HUFFMAN_MAX_BITS; len++) {
        uint32_t c = window >> (ER_HUFFMAN_MAX_BITS - len);
        /* Unsigned wrap makes c < first_code fail the range test too. */
        uint32_t i = c - t->first_code[len];
        if (i < t->count[len]) {
            *symbol = t->sorted[t->offset[len] + i];
            return len;
        }
    }
    return 0;
}

er_status er_huffman_decode__scalar(const uint8_t *code_lengths, const uint8_t *data,
                                    size_t n_bytes, uint8_t *out, size_t n_out) {
    if (!code_lengths || (!data && n_bytes) || (!out && n_out)) return ER_ERR_ARGUMENT;
    er_huffman_table t;
    er_status status = build_table(code_lengths, &t);
    if (status != ER_OK) return status;

    /* bits: the next stream bits, left-aligned; have: how many are real.  Past
     * the end of data zeros are shifted in, so lookups stay in bounds, and a
     * code longer than the real bits left is an early end. */
    uint64_t bits = 0;
    unsigned have = 0;
    size_t pos = 0;
    for (size_t i = 0; i < n_out; i++) {
        if (have < ER_HUFFMAN_MAX_BITS) {
            while (have <= 56 && pos < n_bytes) {
                bits |= (uint64_t)data[pos++] << (56 - have);
                have += 8;
            }
        }
        uint16_t entry = t.fast[bits >> (64 - ER_HUFFMAN_FAST_BITS)];
        unsigned len = entry & 31u;
        uint8_t symbol = (uint8_t)(entry >> 5);
        if (len == 0) {
            len = decode_long(&t, (uint32_t)(bits >> (64 - ER_HUFFMAN_MAX_BITS)), &symbol);
            if (len == 0) return ER_ERR_CORRUPT; /* no code matches these bits */
        }
        if (len > have) return ER_ERR_CORRUPT; /* the stream ended inside a code */
        bits <<= len;
        have -= len;
        out[i] = symbol;
    }
    return ER_OK;
}
