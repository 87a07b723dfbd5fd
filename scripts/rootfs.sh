#!/usr/bin/env bash
# Copies a dynamically or statically linked ELF binary, and every shared library `ldd` says it loads
# (the dynamic loader included), into a root filesystem directory for a FROM-scratch image:
#
#   scripts/rootfs.sh BINARY ROOTFS [NAME]
#
# The binary lands at ROOTFS/NAME (default: its own file name), each library at its own absolute path.
# Fails when ldd reports a library it cannot find.
set -euo pipefail

die() {
    printf 'rootfs: error: %s\n' "$*" >&2
    exit 1
}

[[ $# -ge 2 && $# -le 3 ]] || die "usage: rootfs.sh BINARY ROOTFS [NAME]"
BINARY="$1"
ROOTFS="$2"
NAME="${3:-$(basename "$BINARY")}"
[[ -f "$BINARY" && -x "$BINARY" ]] || die "$BINARY is not an executable file"
command -v ldd >/dev/null 2>&1 || die "ldd is missing (Debian's libc-bin)"

mkdir -p "$ROOTFS"
install -m 0755 "$BINARY" "$ROOTFS/$NAME"

# ldd prints "name => /path (addr)" for libraries, "/path (addr)" for the loader, and "statically
# linked" or "not a dynamic executable" for static binaries.
LDD_OUT="$(ldd "$BINARY" 2>&1 || true)"
if grep -q 'not found' <<<"$LDD_OUT"; then
    die "ldd cannot find some libraries of $BINARY: $(grep 'not found' <<<"$LDD_OUT" | tr -s ' \t' ' ')"
fi
while read -r lib; do
    [[ -n "$lib" ]] || continue
    [[ -f "$lib" ]] || die "ldd named $lib, which is not a file"
    mkdir -p "$ROOTFS$(dirname "$lib")"
    cp -L "$lib" "$ROOTFS$lib"
    chmod 0755 "$ROOTFS$lib"
done < <(awk '/=> \// { print $3 } /^[ \t]*\// { print $1 }' <<<"$LDD_OUT" | sort -u)
