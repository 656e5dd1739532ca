/*
 * semihost.c - writes 1000 console lines through ARM semihosting SYS_WRITE0,
 * then says so on the UART and exits with 0. `virserver bench semihosting`
 * times it through the gateway (target=gdb, each write a File-I/O round trip)
 * against bare QEMU answering the same writes itself (target=native).
 */
#include <stdint.h>

#include "board.h"
#include "uart.h"

#define SYS_WRITE0 0x04u
#define LINES 1000

static void write0(const char *text)
{
    register uint32_t r0 __asm__("r0") = SYS_WRITE0;
    register const char *r1 __asm__("r1") = text;

    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

int main(void)
{
    uart_init();
    for (int line = 0; line < LINES; line++)
        write0("semihosting console line\n");
    uart_puts("semihost: 1000 lines written\n");
    return 0;
}
