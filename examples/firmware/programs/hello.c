/*
 * hello.c - the smoke-test program: prints three fixed lines and exits 0.
 *
 * Expected UART output (every board):
 *   Hello from VirServer on <board>
 *   counting: 1 2 3
 *   done, exiting with 0
 * The counting lives in count_to(), kept out of line so that a debugger can
 * "break count_to" and land on a real source line.
 */
#include "board.h"
#include "uart.h"

__attribute__((noinline, noclone)) void count_to(unsigned n)
{
    uart_puts("counting:");
    for (unsigned i = 1; i <= n; i++) {
        uart_putc(' ');
        uart_put_uint(i);
    }
    uart_putc('\n');
}

int main(void)
{
    uart_init();
    uart_puts("Hello from VirServer on " BOARD_NAME "\n");
    count_to(3);
    uart_puts("done, exiting with 0\n");
    return 0;
}
