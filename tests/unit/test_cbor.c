/*
 * test_cbor.c: the strict CBOR reader and the preferred-encoding writer (common/cbor), at the
 * encoding boundaries of RFC 8949 section 3 and on the inputs the reader must refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "psagw/cbor.h"

static size_t put(uint8_t major, uint64_t arg, uint8_t *out)
{
    struct cbor_writer w;
    cbor_writer_init(&w, out, 16);
    cbor_put_head(&w, major, arg);
    assert_false(w.overflow);
    return w.len;
}

static void test_heads_use_the_shortest_form(void **state)
{
    (void)state;
    static const struct {
        uint64_t arg;
        size_t len;
        uint8_t first;
    } cases[] = {
        {0, 1, 0x00},           {23, 1, 0x17},          {24, 2, 0x18},
        {255, 2, 0x18},         {256, 3, 0x19},         {65535, 3, 0x19},
        {65536, 5, 0x1a},       {0xffffffffu, 5, 0x1a}, {0x100000000ull, 9, 0x1b},
        {UINT64_MAX, 9, 0x1b},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        size_t n = put(CBOR_UINT, cases[i].arg, buf);
        assert_int_equal(n, cases[i].len);
        assert_int_equal(buf[0], cases[i].first);
        assert_int_equal(cbor_head_size(cases[i].arg), cases[i].len);
        struct cbor_reader r;
        uint8_t major;
        uint64_t arg;
        cbor_reader_init(&r, buf, n);
        assert_int_equal(cbor_read_head(&r, &major, &arg), CBOR_OK);
        assert_int_equal(major, CBOR_UINT);
        assert_true(arg == cases[i].arg);
        assert_int_equal(cbor_remaining(&r), 0);
    }
}

static void test_integers_both_signs(void **state)
{
    (void)state;
    static const int64_t values[] = {0, 1, -1, 23, -24, -25, 2394, -75008, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[16];
        struct cbor_writer w;
        cbor_writer_init(&w, buf, sizeof buf);
        cbor_put_int(&w, values[i]);
        struct cbor_reader r;
        int64_t v;
        cbor_reader_init(&r, buf, w.len);
        assert_int_equal(cbor_read_int(&r, &v), CBOR_OK);
        assert_true(v == values[i]);
    }
    /* -75008 is 0x3a 0x00 0x01 0x24 0xff, the legacy nonce key */
    uint8_t buf[16];
    struct cbor_writer w;
    cbor_writer_init(&w, buf, sizeof buf);
    cbor_put_int(&w, -75008);
    static const uint8_t want[] = {0x3a, 0x00, 0x01, 0x24, 0xff};
    assert_int_equal(w.len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    /* a negative integer below INT64_MIN does not fit */
    static const uint8_t too_small[] = {0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0};
    struct cbor_reader r;
    int64_t v;
    cbor_reader_init(&r, too_small, sizeof too_small);
    assert_int_equal(cbor_read_int(&r, &v), CBOR_ERR_RANGE);
}

static void test_refuses_reserved_and_indefinite(void **state)
{
    (void)state;
    static const uint8_t bad[] = {0x1c, 0x1d, 0x1e, 0x5f, 0x7f, 0x9f, 0xbf};
    for (size_t i = 0; i < sizeof bad; i++) {
        struct cbor_reader r;
        uint8_t major;
        uint64_t arg;
        cbor_reader_init(&r, &bad[i], 1);
        int rc = cbor_read_head(&r, &major, &arg);
        assert_true(rc == CBOR_ERR_MALFORMED);
    }
}

static void test_lengths_are_checked_before_use(void **state)
{
    (void)state;
    struct cbor_reader r;
    const uint8_t *p;
    size_t n;
    uint64_t count;
    static const uint8_t bstr_too_long[] = {0x45, 1, 2, 3}; /* 5 bytes declared, 3 there */
    cbor_reader_init(&r, bstr_too_long, sizeof bstr_too_long);
    assert_int_equal(cbor_read_string(&r, CBOR_BSTR, &p, &n), CBOR_ERR_TRUNCATED);
    assert_ptr_equal(r.p, bstr_too_long); /* nothing consumed on failure */
    static const uint8_t huge_map[] = {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cbor_reader_init(&r, huge_map, sizeof huge_map);
    assert_int_equal(cbor_read_container(&r, CBOR_MAP, &count), CBOR_ERR_TRUNCATED);
    static const uint8_t head_cut[] = {0x19, 0x01}; /* a 2-byte argument with 1 byte */
    uint8_t major;
    uint64_t arg;
    cbor_reader_init(&r, head_cut, sizeof head_cut);
    assert_int_equal(cbor_read_head(&r, &major, &arg), CBOR_ERR_TRUNCATED);
    static const uint8_t text[] = {0x63, 'a', 'b', 'c'};
    cbor_reader_init(&r, text, sizeof text);
    assert_int_equal(cbor_read_string(&r, CBOR_BSTR, &p, &n), CBOR_ERR_TYPE);
    assert_int_equal(cbor_read_string(&r, CBOR_TSTR, &p, &n), CBOR_OK);
    assert_int_equal(n, 3);
}

static void test_skip_is_bounded(void **state)
{
    (void)state;
    uint8_t deep[40];
    for (int i = 0; i < 39; i++)
        deep[i] = 0x81; /* [[[[...]]]] */
    deep[39] = 0x00;
    struct cbor_reader r;
    cbor_reader_init(&r, deep, sizeof deep);
    assert_int_equal(cbor_skip(&r, 8), CBOR_ERR_DEPTH);
    cbor_reader_init(&r, deep + 32, 8); /* 7 levels */
    assert_int_equal(cbor_skip(&r, 8), CBOR_OK);
    assert_int_equal(cbor_remaining(&r), 0);
    /* tags, floats and simple values are skipped whole */
    static const uint8_t mixed[] = {0x83, 0xc1, 0x1a, 0, 0, 0, 1, 0xfb, 0, 0, 0, 0, 0, 0, 0, 0, 0xf5};
    cbor_reader_init(&r, mixed, sizeof mixed);
    assert_int_equal(cbor_skip(&r, 4), CBOR_OK);
    assert_int_equal(cbor_remaining(&r), 0);
}

static void test_writer_counts_without_a_buffer_and_reports_overflow(void **state)
{
    (void)state;
    struct cbor_writer w;
    cbor_writer_init(&w, NULL, 0);
    cbor_put_bstr(&w, (const uint8_t *)"0123456789012345678901234", 25);
    assert_int_equal(w.len, 27); /* 0x58 0x19 + 25 */
    uint8_t small[10];
    cbor_writer_init(&w, small, sizeof small);
    cbor_put_bstr(&w, (const uint8_t *)"0123456789012345678901234", 25);
    assert_true(w.overflow);
    assert_int_equal(w.len, 27); /* still says what was needed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads_use_the_shortest_form),
        cmocka_unit_test(test_integers_both_signs),
        cmocka_unit_test(test_refuses_reserved_and_indefinite),
        cmocka_unit_test(test_lengths_are_checked_before_use),
        cmocka_unit_test(test_skip_is_bounded),
        cmocka_unit_test(test_writer_counts_without_a_buffer_and_reports_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
