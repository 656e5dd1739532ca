#!/usr/bin/env bash
# Installs what VirServer needs on a Debian/Ubuntu machine, once: QEMU for Arm,
# AArch64 and RISC-V, gdb-multiarch, the cross compilers for examples/firmware, and
# lcov; and a GDB that serves the Debug Adapter Protocol (GDB >= 14 with Python: PyPI's
# gdb-for-pwndbg, in a virtual environment under target/tools; Debian 12's gdb-multiarch
# is 13.1 and has none). Skips each step when what it installs is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The DAP-capable GDB the server finds beside its build (src/gdb.rs).
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

install_dap_gdb() {
    local venv=target/tools/gdb-venv
    # The tests' own Python clients live there too: the reference Prometheus/OpenMetrics
    # parser and a WebSocket client for WSS.
    local clients=(prometheus-client websockets)
    if [ -x "$venv/bin/gdb" ] && "$venv/bin/gdb" -nx -batch -ex 'python import gdb.dap' >/dev/null 2>&1; then
        if ! "$venv/bin/python" -c 'import prometheus_client, websockets' >/dev/null 2>&1; then
            "$venv/bin/pip" install --quiet --disable-pip-version-check "${clients[@]}"
        fi
        return 0
    fi
    echo "install-deps: installing a GDB with DAP (gdb-for-pwndbg) into $venv" >&2
    rm -rf "$venv"
    mkdir -p target/tools
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 makes virtual environments with python3-venv only.
        $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check gdb-for-pwndbg "${clients[@]}"
}

packages=(qemu-system-arm qemu-system-misc gdb-multiarch gcc-arm-none-eabi
          gcc-riscv64-unknown-elf make lcov socat)
commands=(qemu-system-arm qemu-system-aarch64 qemu-system-riscv32 gdb-multiarch
          arm-none-eabi-gcc riscv64-unknown-elf-gcc make lcov genhtml socat)

missing=()
for command in "${commands[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("$command")
done
if [ ${#missing[@]} -eq 0 ]; then
    install_dap_gdb
    exit 0
fi
echo "install-deps: missing ${missing[*]}; installing ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
install_dap_gdb
