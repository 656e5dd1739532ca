/*
 * start.S - entry point on QEMU's riscv32 virt board with -bios none.
 *
 * QEMU's reset code jumps here in machine mode (a0 = hart id, a1 = device
 * tree). The ELF is loaded straight into RAM, so .data needs no copy: set
 * up the stack and a trap vector, zero .bss, run main, and exit the emulator
 * with main's return value.
 */
    .file   "riscv32-virt/start.S"  /* stable name: not the temporary file */
    .section .text.start, "ax"
    .globl _start
_start:
    la      sp, __stack_top
    la      t0, trap_spin
    csrw    mtvec, t0

    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sw      zero, 0(t0)
    addi    t0, t0, 4
    j       1b

2:  call    main
    tail    board_exit          /* a0 still holds main's return value */

/* Any unexpected trap parks the hart here, where a debugger can see it. */
    .align  2
trap_spin:
    j       trap_spin
