/*
 * print.c - string and number output shared by every board, built only on
 * uart_putc() so that no libc is needed.
 */
#include "uart.h"

void uart_puts(const char *s)
{
    while (*s)
        uart_putc(*s++);
}

void uart_put_uint(unsigned n)
{
    char digits[10]; /* enough for 4294967295 */
    unsigned len = 0;

    do {
        digits[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (len)
        uart_putc(digits[--len]);
}
