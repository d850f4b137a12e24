#!/usr/bin/env bash
# Build the CPython of the python3.12 runtime image from its source into a cache outside the
# repository (runtime-images/build.sh calls it):
#
#   runtime-images/python/cpython.sh      build unless cached, print the tarball's path
#
# Output: $LAMBDALET_CACHE/cpython/<version>/cpython-<version>-<key>.tar.gz, a tree under
# usr/local (bin/python3.12, lib/python3.12, ...) to unpack at / of the Debian base image. The key
# hashes the pinned version and checksum (runtime-images/versions.env) and this script, so a cached
# build is reused, without touching the network, only when none of them changed.
#
# The source is the release tag as the Go module proxy serves it (go checks it against
# sum.golang.org; this script against the pinned h1: hash). It is built here, on Debian bookworm
# like the base image, so it links against the same glibc and the same shared libraries (libssl3,
# libffi8, libsqlite3-0, ...; the base has them as Debian's python3 needs them). The -dev packages
# come from e2e/cluster/install-deps.sh. No PGO or LTO: the build takes minutes, not an hour.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=runtime-images/versions.env
. "$here/../versions.env"

version="$CPYTHON312_VERSION"
minor="${version%.*}"
cache="${LAMBDALET_CACHE:-$HOME/.cache/lambdalet}/cpython/$version"
key="$( (echo "$version $CPYTHON312_H1"; cat "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)"
out="$cache/cpython-$version-$key.tar.gz"
log() { printf '[cpython] %s\n' "$*" >&2; }

if [[ -f "$out" ]]; then
    echo "$out"
    exit 0
fi

start=$SECONDS
# Where it is built; left behind when the build fails, with its logs, until the next attempt.
work="$cache/work"
rm -rf "$work"
mkdir -p "$work"

log "CPython $version: fetching the source from the Go module proxy"
module="github.com/python/cpython@v$version+incompatible"
# A module cache of its own (writable, so it can be removed), and sum.golang.org always asked.
info="$(cd "$work" && GOMODCACHE="$work/gomod" GOFLAGS=-modcacherw GOTOOLCHAIN=local \
    GONOSUMDB='' GONOSUMCHECK='' GOPRIVATE='' GOINSECURE='' GOSUMDB=sum.golang.org \
    go mod download -json "$module")"
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$info"; }
[[ "$(field Sum)" == "$CPYTHON312_H1" ]] ||
    { log "$module has checksum $(field Sum), versions.env pins $CPYTHON312_H1"; exit 1; }
src="$work/src"
mv "$(field Dir)" "$src"
rm -rf "$work/gomod"
# A module zip keeps neither file modes nor times: make the scripts the build runs executable, and
# give every file the same time, so make regenerates nothing that is shipped pre-generated.
chmod -R u+w "$src"
chmod +x "$src/configure" "$src/install-sh" "$src/config.guess" "$src/config.sub" \
    "$src/Modules/makesetup"
find "$src" -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +

log "CPython $version: building (about 3 minutes on 2 cores)"
(
    cd "$src"
    # The same modules whatever -dev packages this machine has: none that needs a library the base
    # lacks (Tk, gdbm), and none that only an interactive terminal uses.
    ./configure --prefix=/usr/local --without-ensurepip --disable-test-modules --with-lto=no \
        py_cv_module__tkinter=n/a py_cv_module__gdbm=n/a py_cv_module__dbm=n/a \
        py_cv_module_readline=n/a py_cv_module__curses=n/a py_cv_module__curses_panel=n/a \
        >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
    # The build leaves out an extension module whose library is missing: that must not pass
    # (e2e/cluster/install-deps.sh installs the -dev packages).
    ./python -c 'import ssl, sqlite3, ctypes, zlib, bz2, lzma, decimal, _uuid, hashlib' ||
        { log "extension modules are missing: see $work/make.log"; exit 1; }
    make altinstall DESTDIR="$work/root" >"$work/install.log" 2>&1 ||
        { tail -30 "$work/install.log" >&2; exit 1; }
)

# Slim it to what a function pod runs: no IDLE, Tk or turtle, no static libpython, no -O bytecode
# (compiled only for the unoptimized level, which is the one a function imports), no debug symbols.
root="$work/root/usr/local"
lib="$root/lib/python$minor"
rm -rf "$lib/idlelib" "$lib/tkinter" "$lib/turtledemo" "$lib/turtle.py" \
    "$root/lib/libpython$minor.a" "$lib"/config-"$minor"-*/libpython"$minor".a \
    "$root/bin/idle$minor" "$root/share"
find "$lib" -name '*.opt-[12].pyc' -delete
find "$lib" -name '__pycache__' -type d -empty -delete
strip --strip-unneeded "$root/bin/python$minor" "$lib"/lib-dynload/*.so
# `python3` is this interpreter in the runtime image: /usr/local/bin precedes Debian's /usr/bin.
ln -s "python$minor" "$root/bin/python3"

# File times are kept: the bytecode is checked against its source's time at import.
tar -C "$work/root" --sort=name --owner=0 --group=0 --numeric-owner -czf "$work/out.tar.gz" usr
mkdir -p "$cache"
find "$cache" -maxdepth 1 -name "cpython-$version-*.tar.gz" -delete
mv "$work/out.tar.gz" "$out"
rm -rf "$work"
log "CPython $version built in $((SECONDS - start)) s: $(du -h "$out" | cut -f1)"
echo "$out"
