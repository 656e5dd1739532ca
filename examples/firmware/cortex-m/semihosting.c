/*
 * semihosting.c - board_exit() for the Cortex-M boards through ARM
 * semihosting SYS_EXIT_EXTENDED, so the emulator exits with the firmware's
 * status code.
 *
 * QEMU must run with "-semihosting-config enable=on,target=native"; QEMU's
 * own exit status is then the code passed here. Without enable=on the
 * BKPT 0xAB is an ordinary breakpoint: the core locks up and QEMU aborts.
 */
#include <stdint.h>

#include "board.h"

#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

void board_exit(int code)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code & 0xffu};
    register uint32_t r0 __asm__("r0") = SYS_EXIT_EXTENDED;
    register uint32_t *r1 __asm__("r1") = block;

    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;)
        ;
}
