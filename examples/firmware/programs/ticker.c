/*
 * ticker.c - a firmware that never exits, for debugger tests (break on
 * tick(), read tick_count) and for stopping a running emulator.
 *
 * A busy-wait loop calls tick() roughly 5-20 times per second of wall time
 * under QEMU TCG; each call increments tick_count and prints "tick <n>".
 * TICK_LOOPS (delay-loop iterations per tick) is set per board by the
 * Makefile, tuned by measurement (see README.md).
 */
#include "board.h"
#include "uart.h"

#ifndef TICK_LOOPS
#error "TICK_LOOPS must be defined by the build"
#endif

volatile unsigned tick_count;

__attribute__((noinline, noclone)) void tick(void)
{
    tick_count++;
    uart_puts("tick ");
    uart_put_uint(tick_count);
    uart_putc('\n');
}

/*
 * Burns time; the empty asm keeps the compiler from removing the loop. Not
 * inlined, so that a debugger's "next" in main() steps over the whole delay
 * with one breakpoint instead of single-stepping millions of iterations.
 */
__attribute__((noinline, noclone)) static void delay(unsigned loops)
{
    for (unsigned i = 0; i < loops; i++)
        __asm__ volatile("");
}

int main(void)
{
    uart_init();
    for (;;) {
        delay(TICK_LOOPS);
        tick();
    }
}
