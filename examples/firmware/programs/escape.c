/*
 * escape.c - a hostile guest: tries every ARM semihosting operation that
 * could reach the host the emulator runs on, and reports on the UART what
 * each returned, so a test can check that a server keeps its guests in.
 * Cortex-M only (BKPT 0xAB; r0 = operation, r1 = parameter block).
 *
 * The report goes to the UART, not through semihosting, so it is readable
 * whatever semihosting does. One line per attempt, "escape: <what> -> <r0>":
 *
 *   system                  SYS_SYSTEM "echo pwned > /tmp/virserver-escape-system"
 *   open /etc/passwd        SYS_OPEN for reading; on success a line
 *                           "escape: read /etc/passwd -> <r0>: <first line>"
 *   open /tmp/...-open      SYS_OPEN of an absolute path for writing, then
 *                           "write /tmp/...-open" (SYS_WRITE; 0 = all written)
 *   open ../virserver-escape-dotdot, open sub/../../virserver-escape-dotdot2
 *                           SYS_OPEN for writing out of the current directory
 *   remove /tmp/virserver-escape-remove           SYS_REMOVE (0 = removed)
 *   rename /tmp/virserver-escape-rename           SYS_RENAME to
 *                           /tmp/virserver-escape-renamed (0 = renamed)
 *
 * A test may create the remove and rename files first and check that they
 * are still there afterwards; every other /tmp/virserver-escape-* file must
 * not exist after a run. Then the harmless operations:
 *
 *   open out.txt / write out.txt / close out.txt / open out.txt for reading /
 *   flen out.txt / read out.txt   a relative file written and read back; then
 *                           "escape: sandbox write/read ok" (or "... failed")
 *   write0, writec          "semihosting console: write0" (SYS_WRITE0) and
 *                           "semihosting console: writec" (SYS_WRITEC, byte by
 *                           byte) as lines on the semihosting console
 *   clock, time, heapinfo (four words), cmdline (the text, when r0 is 0)
 *
 * It ends with "escape: done, exiting with 7" and SYS_EXIT_EXTENDED(7), so a
 * test can check that the exit code is still reported.
 */
#include <stdint.h>

#include "board.h"
#include "uart.h"

#define SYS_OPEN 0x01u
#define SYS_CLOSE 0x02u
#define SYS_WRITEC 0x03u
#define SYS_WRITE0 0x04u
#define SYS_WRITE 0x05u
#define SYS_READ 0x06u
#define SYS_FLEN 0x0Cu
#define SYS_REMOVE 0x0Eu
#define SYS_RENAME 0x0Fu
#define SYS_CLOCK 0x10u
#define SYS_TIME 0x11u
#define SYS_SYSTEM 0x12u
#define SYS_GET_CMDLINE 0x15u
#define SYS_HEAPINFO 0x16u

/* SYS_OPEN modes: the index of the fopen() mode string. */
#define MODE_READ 0u  /* "r" */
#define MODE_WRITE 4u /* "w" */

#define SANDBOX_LINE "virserver sandbox line\n"

static int semihost(uint32_t operation, const void *parameters)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = parameters;

    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int)r0;
}

static uint32_t length(const char *s)
{
    uint32_t n = 0;

    while (s[n])
        n++;
    return n;
}

static void put_int(int value)
{
    if (value < 0) {
        uart_putc('-');
        uart_put_uint(0u - (unsigned)value);
    } else {
        uart_put_uint((unsigned)value);
    }
}

static void put_hex(uint32_t value)
{
    uart_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        uart_putc("0123456789abcdef"[(value >> shift) & 0xfu]);
}

/* "escape: <what> -> <result>\n"; returns the result. */
static int report(const char *what, int result)
{
    uart_puts("escape: ");
    uart_puts(what);
    uart_puts(" -> ");
    put_int(result);
    uart_putc('\n');
    return result;
}

/* Up to len printable bytes, stopping at the first new line. */
static void put_text(const char *text, uint32_t len)
{
    for (uint32_t i = 0; i < len && text[i] != '\n'; i++)
        uart_putc(text[i] >= ' ' && text[i] < 0x7f ? text[i] : '?');
}

static int open_file(const char *name, uint32_t mode)
{
    uint32_t block[3] = {(uint32_t)name, mode, length(name)};

    return semihost(SYS_OPEN, block);
}

static int close_file(int handle)
{
    uint32_t block[1] = {(uint32_t)handle};

    return semihost(SYS_CLOSE, block);
}

/* SYS_WRITE and SYS_READ return the number of bytes not transferred. */
static int transfer(uint32_t operation, int handle, const void *data, uint32_t len)
{
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)data, len};

    return semihost(operation, block);
}

/* Opens `name` for writing, writes one line into it if that worked, closes it. */
static void try_write(const char *label, const char *name)
{
    int handle = report(label, open_file(name, MODE_WRITE));

    if (handle == -1)
        return;
    transfer(SYS_WRITE, handle, SANDBOX_LINE, length(SANDBOX_LINE));
    close_file(handle);
}

static void try_system(void)
{
    static const char command[] = "echo pwned > /tmp/virserver-escape-system";
    uint32_t block[2] = {(uint32_t)command, length(command)};

    report("system", semihost(SYS_SYSTEM, block));
}

static void try_read_passwd(void)
{
    static char buffer[80];
    int handle = report("open /etc/passwd", open_file("/etc/passwd", MODE_READ));
    int missing;

    if (handle == -1)
        return;
    missing = transfer(SYS_READ, handle, buffer, sizeof buffer);
    uart_puts("escape: read /etc/passwd -> ");
    put_int(missing);
    uart_puts(": ");
    if (missing >= 0 && (uint32_t)missing <= sizeof buffer)
        put_text(buffer, sizeof buffer - (uint32_t)missing);
    uart_putc('\n');
    close_file(handle);
}

static void try_absolute_write(void)
{
    static const char name[] = "/tmp/virserver-escape-open";
    int handle = report("open /tmp/virserver-escape-open", open_file(name, MODE_WRITE));

    if (handle == -1)
        return;
    report("write /tmp/virserver-escape-open",
           transfer(SYS_WRITE, handle, "pwned\n", 6));
    close_file(handle);
}

static void try_remove_and_rename(void)
{
    static const char removed[] = "/tmp/virserver-escape-remove";
    static const char from[] = "/tmp/virserver-escape-rename";
    static const char to[] = "/tmp/virserver-escape-renamed";
    uint32_t remove_block[2] = {(uint32_t)removed, length(removed)};
    uint32_t rename_block[4] = {(uint32_t)from, length(from), (uint32_t)to, length(to)};

    report("remove /tmp/virserver-escape-remove", semihost(SYS_REMOVE, remove_block));
    report("rename /tmp/virserver-escape-rename", semihost(SYS_RENAME, rename_block));
}

/* The one file a guest may have: relative, inside wherever the server puts it. */
static void try_sandbox(void)
{
    static char buffer[sizeof SANDBOX_LINE];
    const uint32_t len = length(SANDBOX_LINE);
    int handle = report("open out.txt", open_file("out.txt", MODE_WRITE));
    int ok = handle != -1;

    if (ok) {
        ok = report("write out.txt", transfer(SYS_WRITE, handle, SANDBOX_LINE, len)) == 0;
        report("close out.txt", close_file(handle));
    }
    handle = report("open out.txt for reading", open_file("out.txt", MODE_READ));
    if (handle != -1) {
        uint32_t block[1] = {(uint32_t)handle};

        ok = report("flen out.txt", semihost(SYS_FLEN, block)) == (int)len && ok;
        ok = report("read out.txt", transfer(SYS_READ, handle, buffer, len)) == 0 && ok;
        for (uint32_t i = 0; i < len; i++)
            ok = ok && buffer[i] == SANDBOX_LINE[i];
        close_file(handle);
    } else {
        ok = 0;
    }
    uart_puts(ok ? "escape: sandbox write/read ok\n" : "escape: sandbox write/read failed\n");
}

static void try_console_and_queries(void)
{
    static const char line[] = "semihosting console: writec\n";
    static char cmdline[128];
    static uint32_t heap[4];
    static uint32_t *heap_pointer = heap;
    uint32_t cmdline_block[2] = {(uint32_t)cmdline, sizeof cmdline - 1};
    int writec = 0;

    report("write0", semihost(SYS_WRITE0, "semihosting console: write0\n"));
    for (const char *c = line; *c; c++)
        writec = semihost(SYS_WRITEC, c);
    report("writec", writec);
    report("clock", semihost(SYS_CLOCK, 0));
    report("time", semihost(SYS_TIME, 0));
    report("heapinfo", semihost(SYS_HEAPINFO, &heap_pointer));
    uart_puts("escape: heapinfo");
    for (unsigned i = 0; i < 4; i++) {
        uart_putc(' ');
        put_hex(heap[i]);
    }
    uart_putc('\n');
    if (report("cmdline", semihost(SYS_GET_CMDLINE, cmdline_block)) == 0) {
        uart_puts("escape: cmdline '");
        put_text(cmdline, cmdline_block[1] < sizeof cmdline ? cmdline_block[1] : 0);
        uart_puts("'\n");
    }
}

int main(void)
{
    uart_init();
    uart_puts("escape: start\n");
    try_system();
    try_read_passwd();
    try_absolute_write();
    try_write("open ../virserver-escape-dotdot", "../virserver-escape-dotdot");
    try_write("open sub/../../virserver-escape-dotdot2", "sub/../../virserver-escape-dotdot2");
    try_remove_and_rename();
    try_sandbox();
    try_console_and_queries();
    uart_puts("escape: done, exiting with 7\n");
    board_exit(7);
}
