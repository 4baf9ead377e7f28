#!/usr/bin/env bash
# Installs the Rust standard library's source for the toolchain in use, where rustup's
# rust-src component would put it: the threaded wasm module (web/build.sh) rebuilds the
# standard library with atomics (`-Z build-std`), and only the package registries are
# reachable here, not rustup's server.
#
# Debian's archive carries every rustc release's source. This takes the one whose upstream
# version is this rustc's (`rustc --version`), from the archive apt is configured with, and
# checks it along the archive's chain of trust: the suite's InRelease against Debian's
# keyring (gpgv), the Sources index against InRelease's sha256, and the tarball against
# the index's sha256. Only `library/` is unpacked. Quick when the source is already there.
#
#   scripts/setup-rust-src.sh          (exits 1, saying why, when no suite has this version)
set -euo pipefail

sysroot="$(rustc --print sysroot)"
dest="$sysroot/lib/rustlib/src/rust"
if [ -f "$dest/library/Cargo.toml" ]; then exit 0; fi
version="$(rustc --version | awk '{print $2}')"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "setup-rust-src: $keyring is missing (debian-archive-keyring)" >&2; exit 1; }

# The archive apt reads (deb822 .sources first, then sources.list), not the security one.
# (Either file may be missing: `|| true`, so that pipefail does not end the script.)
mirror="$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" { print $2 }' || true;
             awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
               /etc/apt/sources.list 2>/dev/null || true; } | grep -v -- '-security' | sed -n 1p || true)"
[ -n "$mirror" ] || { echo "setup-rust-src: no Debian archive in apt's sources" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fetch() { curl -fsS --retry 3 -o "$2" "$1"; }

found=""
for suite in sid forky trixie; do
  fetch "$mirror/dists/$suite/InRelease" "$work/InRelease" || continue
  gpgv --quiet --keyring "$keyring" --output "$work/Release" "$work/InRelease" 2>/dev/null \
    || { echo "setup-rust-src: $suite's InRelease does not verify against $keyring" >&2; continue; }
  want="$(awk '/^SHA256:/ { on = 1; next } /^[A-Za-z]/ { on = 0 } on && $3 == "main/source/Sources.xz" { print $1 }' "$work/Release")"
  [ -n "$want" ] || continue
  fetch "$mirror/dists/$suite/main/source/Sources.xz" "$work/Sources.xz" || continue
  [ "$(sha256sum "$work/Sources.xz" | cut -d' ' -f1)" = "$want" ] \
    || { echo "setup-rust-src: $suite's Sources.xz does not match its InRelease" >&2; continue; }
  # The rustc source package whose upstream version is ours: its orig tarball's sha256 and
  # name, from the Checksums-Sha256 field.
  xz -dc "$work/Sources.xz" > "$work/Sources"
  found="$(awk -v v="$version" '
    BEGIN { RS = ""; FS = "\n" }
    $0 ~ /(^|\n)Package: rustc\n/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^Directory: /) dir = substr($i, 12)
      on = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^Checksums-Sha256:/) { on = 1; continue }
        if ($i !~ /^ /) on = 0
        split($i, f, " ")
        if (on && f[3] ~ ("^rustc_" v "\\+[a-z0-9]+\\.orig\\.tar\\.xz$")) { print f[1], dir "/" f[3]; exit }
      }
    }' "$work/Sources")"
  if [ -n "$found" ]; then break; fi
done
[ -n "$found" ] || { echo "setup-rust-src: no Debian suite (sid, forky, trixie) has rustc $version's source" >&2; exit 1; }

read -r sha path <<<"$found"
echo "setup-rust-src: rustc $version's library/ from $path ($suite)"
fetch "$mirror/$path" "$work/src.tar.xz"
[ "$(sha256sum "$work/src.tar.xz" | cut -d' ' -f1)" = "$sha" ] \
  || { echo "setup-rust-src: $path does not match its sha256 in $suite's Sources" >&2; exit 1; }
tar -xJf "$work/src.tar.xz" -C "$work" --wildcards '*/library/*'
mkdir -p "$dest"
rm -rf "$dest/library.partial"
mv "$work"/rustc-*/library "$dest/library.partial"
mv "$dest/library.partial" "$dest/library"
echo "setup-rust-src: installed $dest/library"
