/*
 * board.h - what a program needs from its board besides the UART.
 *
 * BOARD_NAME is passed by the Makefile (-DBOARD_NAME="\"mps2-an385\"" etc.).
 * board_exit() ends the emulator with a status code: ARM semihosting on the
 * Cortex-M boards (cortex-m/semihosting.c), the sifive_test device on
 * riscv32-virt (riscv32-virt/uart.c). The startup code calls it with main's
 * return value, so a program's exit code is simply what main returns.
 */
#ifndef BOARD_H
#define BOARD_H

#ifndef BOARD_NAME
#error "BOARD_NAME must be defined by the build"
#endif

int main(void);
void board_exit(int code) __attribute__((noreturn));

#endif /* BOARD_H */
