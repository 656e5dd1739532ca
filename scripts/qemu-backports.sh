#!/usr/bin/env bash
# Unpacks the newest QEMU (arm, aarch64, riscv) from the distribution's backports
# suite into a private directory, without installing it, and prints the directory
# that holds its binaries. scripts/test runs the suite a second time with it first
# on PATH, so both the distribution's QEMU (Debian 12: 7.2) and a current one (10.x)
# are tested on every change.
#
# The archive is the one the machine's own apt configuration names; nothing here
# names a mirror. Set VIRSERVER_SKIP_QEMU_BACKPORTS=1 to skip on machines without it.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${VIRSERVER_QEMU_BACKPORTS_DIR:-$PWD/target/qemu-backports}"
bin="$dir/root/usr/bin"
# Written last, once everything is unpacked and runs: a partial unpack is redone.
stamp="$dir/unpacked"
if [ -s "$stamp" ] && [ -x "$bin/qemu-system-arm" ] && [ -x "$bin/qemu-system-riscv32" ]; then
    echo "$bin"
    exit 0
fi

. /etc/os-release
codename="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"

# The archive URI: the first deb822 source (or sources.list line) serving $codename.
uri=""
for file in /etc/apt/sources.list.d/*.sources; do
    [ -e "$file" ] || continue
    uri=$(awk -v suite="$codename" '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = 1 }
        /^$/ { if (found && uris) { print uris; exit } uris = ""; found = 0 }
        END { if (found && uris) print uris }' "$file" | head -n1)
    [ -n "$uri" ] && break
done
if [ -z "$uri" ] && [ -e /etc/apt/sources.list ]; then
    uri=$(awk -v suite="$codename" '$1 == "deb" && $3 == suite { print $2; exit }' \
        /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
    echo "qemu-backports: no apt source for $codename found in /etc/apt" >&2
    exit 1
fi

rm -rf "$dir"
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs" "$dir/root"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $uri $codename-backports main" >"$dir/sources.list"
apt_options=(
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "APT::Sandbox::User=$(id -un)"
)
echo "qemu-backports: fetching QEMU from $codename-backports" >&2
apt-get "${apt_options[@]}" update -qq >&2
packages=()
for package in qemu-system-arm qemu-system-riscv qemu-system-common qemu-system-data; do
    packages+=("$package/$codename-backports")
done
(cd "$dir/debs" && apt-get "${apt_options[@]}" download -qq "${packages[@]}" >&2)
for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir/root"
done
version=$("$bin/qemu-system-arm" --version | head -n1)
"$bin/qemu-system-riscv32" --version >/dev/null
echo "qemu-backports: $version" >&2
echo "$version" >"$stamp"
echo "$bin"
