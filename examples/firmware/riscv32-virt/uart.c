/*
 * uart.c - console and exit on QEMU's riscv32 virt board.
 *
 * The console is the ns16550a UART at 0x10000000 (byte registers, no
 * stride), connected to the first -serial device. Exit goes through the
 * sifive_test device at 0x100000: 0x5555 ends QEMU with status 0,
 * (code << 16) | 0x3333 ends it with status `code`.
 */
#include <stdint.h>

#include "board.h"
#include "uart.h"

#define UART0_BASE 0x10000000u
#define UART_REG(off) (*(volatile uint8_t *)(UART0_BASE + (off)))
#define UART_RBR UART_REG(0) /* read */
#define UART_THR UART_REG(0) /* write */
#define UART_IER UART_REG(1)
#define UART_LCR UART_REG(3)
#define UART_LSR UART_REG(5)

#define LCR_8N1 0x03u
#define LSR_DATA_READY (1u << 0)
#define LSR_THR_EMPTY (1u << 5)

#define SIFIVE_TEST (*(volatile uint32_t *)0x00100000u)
#define SIFIVE_TEST_PASS 0x5555u
#define SIFIVE_TEST_FAIL 0x3333u

/*
 * The FIFO control register is left alone on purpose: QEMU resets the
 * receive FIFO when its enable bit changes, which would drop input that
 * arrived before uart_init() ran (e.g. piped into -serial stdio).
 */
void uart_init(void)
{
    UART_IER = 0; /* polling only */
    UART_LCR = LCR_8N1;
}

void uart_putc(char c)
{
    while (!(UART_LSR & LSR_THR_EMPTY))
        ;
    UART_THR = (uint8_t)c;
}

char uart_getc(void)
{
    while (!(UART_LSR & LSR_DATA_READY))
        ;
    return (char)UART_RBR;
}

void board_exit(int code)
{
    uint32_t status = (uint32_t)code & 0xffu;

    SIFIVE_TEST = status ? (status << 16) | SIFIVE_TEST_FAIL : SIFIVE_TEST_PASS;
    for (;;)
        ;
}
