/*
 * uart.c - console on lm3s6965evb: the ARM PL011 UART0 at 0x4000C000, which
 * QEMU connects to the first -serial device.
 *
 * QEMU's PL011 needs no set-up; the init below (8N1, FIFOs, UART/TX/RX
 * enabled) is what the hardware expects, minus the clock gating a real
 * LM3S6965 also needs (SYSCTL RCGC1/RCGC2 and the GPIO pin mux).
 */
#include <stdint.h>

#include "uart.h"

#define UART0_BASE 0x4000C000u
#define UART_REG(off) (*(volatile uint32_t *)(UART0_BASE + (off)))
#define UART_DR UART_REG(0x000)
#define UART_FR UART_REG(0x018)
#define UART_IBRD UART_REG(0x024)
#define UART_FBRD UART_REG(0x028)
#define UART_LCRH UART_REG(0x02C)
#define UART_CR UART_REG(0x030)

#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCRH_FEN (1u << 4)
#define LCRH_WLEN_8 (3u << 5)
#define CR_UARTEN (1u << 0)
#define CR_TXE (1u << 8)
#define CR_RXE (1u << 9)

void uart_init(void)
{
    UART_CR = 0;
    UART_IBRD = 27; /* 115200 baud from a 50 MHz clock: 27 + 8/64 */
    UART_FBRD = 8;
    UART_LCRH = LCRH_WLEN_8 | LCRH_FEN;
    UART_CR = CR_UARTEN | CR_TXE | CR_RXE;
}

void uart_putc(char c)
{
    while (UART_FR & FR_TXFF)
        ;
    UART_DR = (uint8_t)c;
}

char uart_getc(void)
{
    while (UART_FR & FR_RXFE)
        ;
    return (char)UART_DR;
}
