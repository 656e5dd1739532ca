#!/usr/bin/env bash
# Installs what VirServer needs on a Debian/Ubuntu machine, once: QEMU for Arm,
# AArch64 and RISC-V, gdb-multiarch, the cross compilers for examples/firmware, and
# lcov. Skips apt entirely when everything is already there.
set -euo pipefail

packages=(qemu-system-arm qemu-system-misc gdb-multiarch gcc-arm-none-eabi
          gcc-riscv64-unknown-elf make lcov socat)
commands=(qemu-system-arm qemu-system-aarch64 qemu-system-riscv32 gdb-multiarch
          arm-none-eabi-gcc riscv64-unknown-elf-gcc make lcov genhtml socat)

missing=()
for command in "${commands[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("$command")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install-deps: missing ${missing[*]}; installing ${packages[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
