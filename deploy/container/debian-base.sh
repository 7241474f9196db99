#!/usr/bin/env bash
# Make the container image's base, debian:bookworm-slim, from Debian's own packages (no image registry):
#
#   deploy/container/debian-base.sh [IMAGE]      default IMAGE: docker.io/library/debian:bookworm-slim
#
# debootstrap --variant=minbase bookworm, from the mirror the machine's apt sources already use, then
# "slimmed" as Debian's official slim images are (debuerreotype --slimify: no documentation, manual pages
# or translations, now and for every package installed later; no apt lists or caches), imported into
# podman under IMAGE. Done once per machine: an existing IMAGE is kept. Root only (debootstrap).
# tests/test_container.py calls it; the Dockerfile's FROM then finds the image locally.
set -euo pipefail
image=${1:-docker.io/library/debian:bookworm-slim}
if podman image exists "$image"; then
  exit 0
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "debian-base: no Debian mirror in the apt sources" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
root="$work/rootfs"
# what debuerreotype's slimify writes: dpkg keeps no docs, man pages or translations from now on
cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CFG
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
printf 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n' > "$root/etc/apt/apt.conf.d/docker-gzip-indexes"
printf 'APT::AutoRemove::SuggestsImportant "false";\n' > "$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/groff/"* "$root/usr/share/linda/"* \
       "$root/usr/share/lintian/overrides/"*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb "$root/var/log/"*.log \
       "$root/var/log/apt/"* "$root/tmp/"*
tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$image" > /dev/null
echo "debian-base: $image made from $mirror ($(du -sh "$root" | cut -f1))"
