/*
 * timer.c - reads the board's hardware timer between busy loops and prints
 * what it read: "timer: A B C D E", then exits with 0. The loops are the same
 * every run, but the timer follows the host's clock, so the values differ
 * from run to run; under a deterministic session (virtual time counted in
 * instructions) they repeat exactly. That is what the determinism tests check.
 *
 * Cortex-M: SysTick (CSR = 1: enabled, the external reference clock), a
 * 24-bit down-counter. riscv32 virt: the low word of the CLINT's mtime.
 */
#include "board.h"
#include "uart.h"

#define READINGS 5

#if defined(__riscv)
#define MTIME_LO (*(volatile unsigned *)0x0200bff8u)
static void timer_start(void) {}
static unsigned timer_read(void) { return MTIME_LO; }
#else
#define SYST_CSR (*(volatile unsigned *)0xe000e010u)
#define SYST_RVR (*(volatile unsigned *)0xe000e014u)
#define SYST_CVR (*(volatile unsigned *)0xe000e018u)
static void timer_start(void)
{
    SYST_RVR = 0x00ffffffu;
    SYST_CVR = 0;
    SYST_CSR = 1;
}
static unsigned timer_read(void) { return SYST_CVR; }
#endif

__attribute__((noinline, noclone)) static void delay(unsigned loops)
{
    for (unsigned i = 0; i < loops; i++)
        __asm__ volatile("");
}

int main(void)
{
    unsigned readings[READINGS];
    uart_init();
    timer_start();
    for (int i = 0; i < READINGS; i++) {
        delay(200000);
        readings[i] = timer_read();
    }
    uart_puts("timer:");
    for (int i = 0; i < READINGS; i++) {
        uart_putc(' ');
        uart_put_uint(readings[i]);
    }
    uart_putc('\n');
    return 0;
}
