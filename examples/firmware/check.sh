#!/bin/sh
# check.sh - runs each example firmware ELF under QEMU with the command line
# the gateway uses and checks its UART output and exit status, so CI can
# verify the toolchain build. Called by "make check" with the ELF paths;
# prints one PASS/FAIL line per ELF and exits non-zero if any failed.
#
# ticker-* never exits: it runs for TICKER_SECONDS (default 3), then checks
# that it printed "tick 1", "tick 2", ... and reports the tick rate.

TICKER_SECONDS=${TICKER_SECONDS:-3}
ARM_QEMU="qemu-system-arm -nographic -monitor none -serial stdio -semihosting-config enable=on,target=native"
RV_QEMU="qemu-system-riscv32 -M virt -bios none -nographic -monitor none -serial stdio"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# run ELF SECONDS INPUT: runs the ELF with INPUT on the UART; sets $rc and
# leaves the UART output in $tmp/out, QEMU's stderr in $tmp/err.
run() {
    case $(basename "$1" .elf) in
        *-mps2-an385) qemu="$ARM_QEMU -M mps2-an385" ;;
        *-lm3s6965evb) qemu="$ARM_QEMU -M lm3s6965evb" ;;
        *-riscv32-virt) qemu="$RV_QEMU" ;;
        *) echo "unknown board: $1" >&2; exit 2 ;;
    esac
    printf '%s' "$3" >"$tmp/in"
    timeout "$2" $qemu -kernel "$1" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect NAME WANT_RC WANT_OUTPUT: compares the last run with expectations.
expect() {
    printf '%s' "$3" >"$tmp/want"
    if [ "$rc" -eq "$2" ] && cmp -s "$tmp/want" "$tmp/out"; then
        echo "PASS $1 (exit $rc)"
    else
        echo "FAIL $1 (exit $rc, want $2)"
        echo "  output:"; sed 's/^/    /' "$tmp/out"
        echo "  wanted:"; sed 's/^/    /' "$tmp/want"
        echo "  stderr:"; sed 's/^/    /' "$tmp/err"
        failed=1
    fi
}

nl='
'
cr=$(printf '\r')
for elf in "$@"; do
    name=$(basename "$elf" .elf)
    board=${name#*-}
    case $name in
        hello-*)
            run "$elf" 10 ""
            expect "$name" 0 "Hello from VirServer on $board${nl}counting: 1 2 3${nl}done, exiting with 0${nl}"
            ;;
        exit3-*)
            run "$elf" 10 ""
            expect "$name" 3 "about to exit with 3${nl}"
            ;;
        echo-*)
            # 10 bytes before the 'q': "ab", CR, LF, "hello", LF.
            run "$elf" 10 "ab${cr}${nl}hello${nl}q"
            expect "$name" 10 "echo ready${nl}ab${nl}${nl}hello${nl}bye${nl}"
            ;;
        ticker-*)
            run "$elf" "$TICKER_SECONDS" ""
            # Leading lines that read "tick 1", "tick 2", ...; every complete
            # line must be one (the kill may cut the last one short).
            ticks=$(awk '$0 == "tick " NR { n = NR; next } { exit } END { print n + 0 }' "$tmp/out")
            lines=$(wc -l <"$tmp/out")
            if [ "$rc" -eq 124 ] && [ "$ticks" -ge 2 ] && [ "$ticks" -ge "$lines" ]; then
                echo "PASS $name ($ticks ticks in ${TICKER_SECONDS}s, about $((ticks / TICKER_SECONDS))/s)"
            else
                echo "FAIL $name (exit $rc, want 124 from timeout; $ticks ticks)"
                head -n 20 "$tmp/out" | sed 's/^/    /'
                failed=1
            fi
            ;;
        *)
            echo "FAIL $name (no check defined)"
            failed=1
            ;;
    esac
done
exit $failed
