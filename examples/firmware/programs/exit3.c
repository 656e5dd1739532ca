/*
 * exit3.c - checks that a firmware's exit status reaches the caller: prints
 * "about to exit with 3" and exits with status 3.
 */
#include "board.h"
#include "uart.h"

int main(void)
{
    uart_init();
    uart_puts("about to exit with 3\n");
    return 3;
}
