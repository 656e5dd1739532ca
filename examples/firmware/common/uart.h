/*
 * uart.h - the tiny console interface that every board implements.
 *
 * Programs talk to the outside world only through these functions, so one
 * program body (programs/<name>.c) builds unchanged for every board. Each board
 * directory supplies uart_init/uart_putc/uart_getc in its uart.c; the
 * formatting helpers below live in common/print.c and are shared.
 */
#ifndef UART_H
#define UART_H

/* Board-specific, in <board>/uart.c. */
void uart_init(void);
void uart_putc(char c);
char uart_getc(void); /* polls until a byte has been received */

/* Shared, in common/print.c. */
void uart_puts(const char *s);
void uart_put_uint(unsigned n);

#endif /* UART_H */
