/*
 * echo.c - exercises UART input: prints "echo ready", then echoes every byte
 * it receives ('\r' and '\n' both come back as "\n"). On 'q' it prints "bye"
 * and exits with the number of bytes received before the 'q', modulo 256.
 *
 * Example: input "hello\nq" gives "echo ready\nhello\nbye\n" and status 6.
 */
#include "board.h"
#include "uart.h"

int main(void)
{
    unsigned received = 0;

    uart_init();
    uart_puts("echo ready\n");
    for (;;) {
        char c = uart_getc();

        if (c == 'q')
            break;
        received++;
        uart_putc(c == '\r' ? '\n' : c);
    }
    uart_puts("bye\n");
    return (int)(received & 0xffu);
}
