/*
 * startup.c - vector table and reset handler shared by the Cortex-M3 boards
 * (mps2-an385, lm3s6965evb). Their only differences are the memory sizes in
 * <board>/link.ld and the UART in <board>/uart.c.
 *
 * On reset the core loads SP from vector 0 and jumps to vector 1
 * (Reset_Handler), which copies .data from flash to RAM, zeroes .bss, runs
 * main and exits the emulator with main's return value.
 */
#include <stdint.h>

#include "board.h"

/* Defined by cortex-m/sections.ld. */
extern uint32_t __stack_top[];
extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];

void Reset_Handler(void) __attribute__((noreturn));
void Default_Handler(void);

typedef void (*vector_t)(void);

/* The 16 system vectors; these programs use no external interrupts. */
__attribute__((section(".vectors"), used))
static const vector_t vectors[16] = {
    (vector_t)__stack_top, /* initial SP: top of RAM */
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,      /* reserved */
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,               /* reserved */
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};

void Reset_Handler(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst = __data_start;

    while (dst < __data_end)
        *dst++ = *src++;
    for (dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;

    board_exit(main());
}

/* Any unexpected exception parks the core here, where a debugger can see it. */
void Default_Handler(void)
{
    for (;;)
        ;
}
