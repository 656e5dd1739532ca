/* Benchmark firmware for `examples/bench.rs`: about ten million guest
 * instructions spread over a few functions (a bitwise CRC-32, an insertion
 * sort, a checksum), then exit through ARM semihosting SYS_EXIT_EXTENDED
 * so that QEMU's exit status is 0 when the results are as expected.
 * Cortex-M3 on QEMU -M mps2-an385; built by build.sh beside this file. */

#define ROUNDS 955u
#define LENGTH 64u

extern unsigned _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

static unsigned char buffer[LENGTH];
static unsigned values[LENGTH];
volatile unsigned sink;

__attribute__((noinline)) unsigned crc32(const unsigned char *data, unsigned n)
{
    unsigned crc = 0xffffffffu;
    for (unsigned i = 0; i < n; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1u));
        }
    }
    return ~crc;
}

__attribute__((noinline)) void insertion_sort(unsigned *a, unsigned n)
{
    for (unsigned i = 1; i < n; i++) {
        unsigned key = a[i];
        unsigned j = i;
        while (j > 0 && a[j - 1] > key) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = key;
    }
}

__attribute__((noinline)) unsigned fill(unsigned seed)
{
    for (unsigned i = 0; i < LENGTH; i++) {
        seed = seed * 1664525u + 1013904223u;
        buffer[i] = (unsigned char)(seed >> 24);
        values[i] = seed;
    }
    return seed;
}

__attribute__((noinline)) unsigned checksum(const unsigned *a, unsigned n)
{
    unsigned h = 0;
    for (unsigned i = 0; i < n; i++) {
        h = (h << 5) + h + a[i];
    }
    return h;
}

static void semihosting_exit(int code)
{
    unsigned block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (unsigned)code};
    register unsigned r0 __asm__("r0") = 0x20; /* SYS_EXIT_EXTENDED */
    register unsigned *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

int main(void)
{
    unsigned seed = 1;
    unsigned total = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        seed = fill(seed);
        total += crc32(buffer, LENGTH);
        insertion_sort(values, LENGTH);
        total += checksum(values, LENGTH);
    }
    sink = total;
    return 0;
}

void Reset_Handler(void)
{
    unsigned *src = _sidata;
    for (unsigned *dst = _sdata; dst < _edata;) {
        *dst++ = *src++;
    }
    for (unsigned *dst = _sbss; dst < _ebss;) {
        *dst++ = 0;
    }
    semihosting_exit(main());
}

void Default_Handler(void)
{
    semihosting_exit(255);
}

__attribute__((section(".vectors"), used)) void (*const vectors[])(void) = {
    (void (*)(void))_estack, Reset_Handler, Default_Handler, Default_Handler,
};
