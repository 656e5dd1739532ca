/*
 * uart.c - console on mps2-an385: ARM CMSDK APB UART0 at 0x40004000, which
 * QEMU connects to the first -serial device.
 *
 * QEMU's model moves no byte until TX (and, for input, RX) is enabled in
 * CTRL and BAUDDIV holds a legal divisor (16 or more).
 */
#include <stdint.h>

#include "uart.h"

#define UART0_BASE 0x40004000u
#define UART_REG(off) (*(volatile uint32_t *)(UART0_BASE + (off)))
#define UART_DATA UART_REG(0x00)
#define UART_STATE UART_REG(0x04)
#define UART_CTRL UART_REG(0x08)
#define UART_BAUDDIV UART_REG(0x10)

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)

void uart_init(void)
{
    UART_BAUDDIV = 16; /* the smallest legal divisor; QEMU models no timing */
    UART_CTRL = CTRL_TX_EN | CTRL_RX_EN;
}

void uart_putc(char c)
{
    while (UART_STATE & STATE_TX_FULL)
        ;
    UART_DATA = (uint8_t)c;
}

char uart_getc(void)
{
    while (!(UART_STATE & STATE_RX_FULL))
        ;
    return (char)UART_DATA;
}
