#!/usr/bin/env bash
# CI only: local stand-ins for the Dockerfile's three base images, for a machine that can reach
# Debian's package mirror but no container registry. Users build the Dockerfile with Docker and
# the real bases; nothing here changes the Dockerfile or the image it makes.
#
#   scripts/make-base-stand-ins.sh            # makes those missing from buildah's storage
#
# Each stand-in is a Debian bookworm root made by mmdebstrap from the machine's own apt sources,
# committed under the name the Dockerfile asks for, with what the real image provides there:
#   rust:1.95-slim-bookworm     minbase + gcc, libc6-dev, ca-certificates, and this machine's
#                               Rust toolchain (rustup's), as the official image has it in
#                               /usr/local/cargo; CARGO_HOME, RUSTUP_HOME and PATH as there.
#   python:3.11-slim-bookworm   minbase + python3 and pip (Debian's; bookworm's python3 is 3.11).
#   gcr.io/distroless/cc-debian12:nonroot
#                               extracted, not installed, like distroless itself: base-files,
#                               netbase, tzdata, ca-certificates, libc6, libssl3, libgcc-s1,
#                               libgomp1, libstdc++6; no shell, no package manager; user
#                               nonroot (65532) with its home.
# The machine's CA bundle replaces the packaged one in the build stand-ins, so pip and cargo
# reach the registries the way the machine itself does.
#
# Settings: STORAGE_DRIVER (default vfs), BUILDAH_ISOLATION (default chroot), APT_SOURCES (the
# apt sources file for mmdebstrap; default the machine's own).
set -euo pipefail
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
sources="${APT_SOURCES:-}"
if [ -z "$sources" ]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [ -s "$f" ] && { sources="$f"; break; }
    done
fi
[ -n "$sources" ] || { echo "make-base-stand-ins: no apt sources file found (set APT_SOURCES)" >&2; exit 2; }
for tool in buildah mmdebstrap; do
    command -v "$tool" >/dev/null || { echo "make-base-stand-ins: $tool is not installed (apt-get install buildah mmdebstrap)" >&2; exit 2; }
done
ca=/etc/ssl/certs/ca-certificates.crt
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }
say() { echo "[stand-ins $(date +%H:%M:%S)] $*"; }

# NAME TARBALL [buildah config args...]: a one-layer image from a root file system; the tarball
# is removed once committed.
commit() {
    local name=$1 tarball=$2; shift 2
    local ctr
    ctr="$(buildah from --quiet scratch)"
    buildah add --quiet "$ctr" "$tarball" / >/dev/null
    buildah config --os linux --arch amd64 "$@" "$ctr"
    buildah commit --quiet --rm "$ctr" "$name" >/dev/null
    rm -f "$tarball"
    say "$name: $(buildah images --format '{{.Size}}' "$name" | head -1)"
}

# Trim what no image of this kind ships: documentation, manuals, translations, apt lists.
trim='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/* "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*'

rust_name=docker.io/library/rust:1.95-slim-bookworm
if ! have "$rust_name"; then
    toolchain="$(rustc --print sysroot)"
    say "$rust_name: minbase + gcc from apt, Rust from $toolchain"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm \
        --customize-hook="$trim" \
        --customize-hook="mkdir -p \"\$1/usr/local/rustup/toolchain\" \"\$1/usr/local/cargo/bin\"" \
        --customize-hook="tar -C '$toolchain' --exclude=./share/doc -cf - . | tar -C \"\$1/usr/local/rustup/toolchain\" -xf -" \
        --customize-hook="for b in cargo rustc rustdoc; do ln -s ../../rustup/toolchain/bin/\$b \"\$1/usr/local/cargo/bin/\$b\"; done" \
        --customize-hook="cp '$ca' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
        "$work/rust.tar" "$sources"
    commit "$rust_name" "$work/rust.tar" \
        --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
        --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd bash
fi

python_name=docker.io/library/python:3.11-slim-bookworm
if ! have "$python_name"; then
    say "$python_name: minbase + python3, python3-pip"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,python3,python3-pip bookworm \
        --customize-hook="$trim" \
        --customize-hook="ln -sf python3 \"\$1/usr/bin/python\"" \
        --customize-hook="cp '$ca' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
        "$work/python.tar" "$sources"
    commit "$python_name" "$work/python.tar" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3
fi

distroless_name=gcr.io/distroless/cc-debian12:nonroot
if ! have "$distroless_name"; then
    say "$distroless_name: extracted Debian packages, no shell"
    # The files distroless adds itself: users, groups, a writable /tmp, the nonroot home.
    mkdir -p "$work/etc"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$work/etc/group"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n' >"$work/etc/nsswitch.conf"
    mmdebstrap --quiet --variant=extract \
        --include=base-files,netbase,tzdata,ca-certificates,libc6,libssl3,libgcc-s1,libgomp1,libstdc++6 bookworm \
        --customize-hook="$trim" \
        --customize-hook="rm -rf \"\$1\"/var/lib/dpkg \"\$1\"/var/cache/* \"\$1\"/var/log/*" \
        --customize-hook="cp '$work/etc/passwd' '$work/etc/group' '$work/etc/nsswitch.conf' \"\$1/etc/\"" \
        --customize-hook="mkdir -p \"\$1/etc/ssl/certs\" \"\$1/home/nonroot\" \"\$1/tmp\" && cp '$ca' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
        --customize-hook="chown 65532:65532 \"\$1/home/nonroot\" && chmod 0700 \"\$1/home/nonroot\" && chmod 1777 \"\$1/tmp\"" \
        "$work/distroless.tar" "$sources"
    commit "$distroless_name" "$work/distroless.tar" \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --user 65532 --workingdir /home/nonroot
fi
say "base images ready: $rust_name, $python_name, $distroless_name"
