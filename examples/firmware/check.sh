#!/bin/sh
# check.sh - runs each example firmware ELF under QEMU with the command line
# the gateway uses and checks its UART output and exit status, so CI can
# verify the toolchain build. Called by "make check" with the ELF paths;
# prints one PASS/FAIL line per ELF and exits non-zero if any failed.
#
# ticker-* never exits: it runs for TICKER_SECONDS (default 3), then checks
# that it printed "tick 1", "tick 2", ... and reports the tick rate.
#
# escape-* tries to reach the host through semihosting (programs/escape.c):
# it runs with target=gdb and no debugger attached, so that QEMU performs
# none of its calls, and the check is that it made every attempt, still
# exited with 7, and left no file behind.

TICKER_SECONDS=${TICKER_SECONDS:-3}
ARM_QEMU="qemu-system-arm -nographic -monitor none -serial stdio -semihosting-config"
semihosting=native
RV_QEMU="qemu-system-riscv32 -M virt -bios none -nographic -monitor none -serial stdio"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# run ELF SECONDS INPUT: runs the ELF with INPUT on the UART, in the empty
# directory $tmp/cwd, with target=$semihosting on the Cortex-M boards; sets
# $rc and leaves the UART output in $tmp/out, QEMU's stderr in $tmp/err.
run() {
    arm="$ARM_QEMU enable=on,target=$semihosting"
    case $(basename "$1" .elf) in
        *-mps2-an385) qemu="$arm -M mps2-an385" ;;
        *-lm3s6965evb) qemu="$arm -M lm3s6965evb" ;;
        *-riscv32-virt) qemu="$RV_QEMU" ;;
        *) echo "unknown board: $1" >&2; exit 2 ;;
    esac
    kernel=$(realpath "$1")
    printf '%s' "$3" >"$tmp/in"
    rm -rf "$tmp/cwd" && mkdir "$tmp/cwd"
    (cd "$tmp/cwd" && timeout "$2" $qemu -kernel "$kernel") <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
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
        timer-*)
            # Five timer readings, whatever their values.
            run "$elf" 10 ""
            if [ "$rc" -eq 0 ] && grep -Eq '^timer:( [0-9]+){5}$' "$tmp/out"; then
                echo "PASS $name (exit 0, $(cat "$tmp/out"))"
            else
                echo "FAIL $name (exit $rc, want 0 and five readings)"
                sed 's/^/    /' "$tmp/out" "$tmp/err"
                failed=1
            fi
            ;;
        semihost-*)
            # Its 1000 semihosted lines go to QEMU's stderr (target=native).
            run "$elf" 10 ""
            expect "$name" 0 "semihost: 1000 lines written${nl}"
            lines=$(grep -c '^semihosting console line$' "$tmp/err")
            if [ "$lines" -ne 1000 ]; then
                echo "FAIL $name ($lines semihosted lines, want 1000)"
                failed=1
            fi
            ;;
        escape-*)
            semihosting=gdb
            run "$elf" 10 ""
            semihosting=native
            missing=
            for attempt in system "open /etc/passwd" "open /tmp/virserver-escape-open" \
                "open ../virserver-escape-dotdot" "open sub/../../virserver-escape-dotdot2" \
                "remove /tmp/virserver-escape-remove" "rename /tmp/virserver-escape-rename" \
                "open out.txt" "open out.txt for reading" write0 writec clock time heapinfo cmdline; do
                grep -qF "escape: $attempt -> " "$tmp/out" || missing="$missing, $attempt"
            done
            left=$(find "$tmp/cwd" "$tmp" /tmp -maxdepth 1 -newer "$tmp/in" \
                \( -name 'virserver-escape-*' -o -path "$tmp/cwd/*" \) 2>/dev/null | tr '\n' ' ')
            last=$(tail -n 1 "$tmp/out")
            if [ "$rc" -eq 7 ] && [ -z "$missing" ] && [ -z "$left" ] &&
                [ "$last" = "escape: done, exiting with 7" ]; then
                echo "PASS $name (exit $rc, every attempt made, no file left)"
            else
                echo "FAIL $name (exit $rc, want 7; missing attempts: ${missing#, }; files: $left)"
                sed 's/^/    /' "$tmp/out" "$tmp/err"
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
