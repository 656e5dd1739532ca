#!/bin/sh
# Rebuilds bench.elf, the firmware `cargo run --release -p virserver-coverage
# --example bench_coverage` runs under QEMU. The ELF is committed, so the benchmark
# needs no cross compiler; run this only after changing bench.c.
# Needs: arm-none-eabi-gcc. Source paths in DWARF are mapped to /bench so the
# ELF does not depend on where the repository is checked out.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -g -O1 -ffreestanding -nostdlib \
    -fdebug-prefix-map="$here"=/bench -Wall -Wextra -T link.ld \
    -o bench.elf "$here/bench.c"
ls -l bench.elf
