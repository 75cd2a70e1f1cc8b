#!/usr/bin/env bash
# The kernel matrix: boots distribution kernels under qemu (software emulation: this host's
# KVM cannot boot a stock kernel) with the host's root shared read-only over 9p, and runs
# scripts/kernel-checks.sh inside each, in namespaces, against this checkout's build.
#
# Kernels: Debian 12's stock kernel (linux-image-amd64, 6.1), fetched with apt-get download
# and unpacked under .build-kernels/ (the host's own kernel and /boot are not touched).
# Skipped, with a line saying why, only where qemu cannot run (no qemu-system-x86_64, or no
# kernel package to fetch). Exit status: non-zero when a check failed in any kernel.
#
# Usage: scripts/test-kernels.sh [--keep]   (--keep leaves the boot files in .build-kernels)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/.build-kernels
mkdir -p "$WORK"

[[ $(id -u) -eq 0 ]] || { echo "test-kernels: skipped: needs root (namespaces inside the VM, apt)" >&2; exit 0; }
for pkg in qemu-system-x86 busybox-static kmod cpio; do
    if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 ||
            { echo "test-kernels: skipped: cannot install $pkg, so qemu cannot run here" >&2; exit 0; }
    fi
done
[[ -x .build/debug/mptcp-relay ]] || swift build >/dev/null

# Debian 12's stock kernel: whatever linux-image-amd64 depends on today.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $KPKG ]] || { apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
[[ -n $KPKG ]] || { echo "test-kernels: skipped: no linux-image-amd64 in the package lists" >&2; exit 0; }
KVER=${KPKG#linux-image-}
KROOT=$WORK/$KVER
if [[ ! -f $KROOT/boot/vmlinuz-$KVER ]]; then
    rm -rf "$KROOT" "$WORK/dl"; mkdir -p "$WORK/dl"
    (cd "$WORK/dl" && apt-get download -qq "$KPKG" 2>/dev/null) ||
        { echo "test-kernels: skipped: cannot download $KPKG" >&2; exit 0; }
    dpkg-deb -x "$WORK"/dl/*.deb "$KROOT"
    rm -rf "$WORK/dl"
    depmod -b "$KROOT" "$KVER"   # the package's postinst would; modprobe needs modules.dep
fi

# A busybox initramfs: load the virtio and 9p modules, mount the host's root read-only,
# give it writable tmpfs where tests write, send the kernel's module requests to the host
# root's modprobe with this kernel's unpacked modules, chroot and run the checks, power off.
INITRD=$WORK/initrd-$KVER.cpio.gz
build_initrd() {
    local dir=$WORK/initrd-$KVER
    rm -rf "$dir"; mkdir -p "$dir"/{bin,dev,proc,sys,mnt,modules}
    cp /bin/busybox "$dir/bin/busybox"
    for m in $(modprobe -d "$KROOT" -S "$KVER" --show-depends -a virtio_pci 9pnet_virtio 9p | awk '/^insmod/ {print $2}'); do
        local name; name=$(basename "$m")
        grep -qxF "$name" "$dir/modules/order" 2>/dev/null && continue
        cp "$m" "$dir/modules/$name"
        echo "$name" >>"$dir/modules/order"
    done
    cat >"$dir/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in \$(cat /modules/order); do insmod /modules/\$m; done
# The virtio device may probe a moment after its module loads.
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /mnt 2>/dev/null && break
    sleep 0.25
done
grep -q " /mnt " /proc/mounts || { echo "KERNEL-CHECK FAIL mount host root: \$(cat /modules/order | tr '\\n' ' ')"; ls /sys/bus/virtio/devices; poweroff -f; }
for d in proc sys dev; do mount --rbind /\$d /mnt/\$d; done
# The checkout may live under one of the folders that get a tmpfs (CI clones into /tmp):
# keep it reachable by binding it back over the tmpfs.
mkdir -p /repo && mount --bind /mnt$REPO /repo
for d in tmp run var/tmp var/lib/nftables root; do [ -d /mnt/\$d ] && mount -t tmpfs tmpfs /mnt/\$d; done
mkdir -p /mnt$REPO 2>/dev/null; mount --bind /repo /mnt$REPO
# The kernel runs modprobe (for veth, qdiscs, nft expressions) in the initramfs's root:
# hand those requests to the host root's modprobe, which knows this kernel's modules.
printf '#!/bin/busybox sh\nexec chroot /mnt /sbin/modprobe -d $KROOT "\$@"\n' >/bin/modprobe-host
chmod +x /bin/modprobe-host
echo /bin/modprobe-host >/proc/sys/kernel/modprobe
chroot /mnt /bin/bash $REPO/scripts/kernel-checks.sh $REPO $KROOT
echo "KERNEL-CHECK DONE rc=\$?"
poweroff -f
INIT
    chmod +x "$dir/init"
    (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD"
}
build_initrd

echo "test-kernels: booting $KVER under qemu (TCG), checks from scripts/kernel-checks.sh"
LOG=$WORK/console-$KVER.log
start=$(date +%s)
timeout 900 qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
    -nographic -no-reboot -kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$INITRD" \
    -append "console=ttyS0 quiet panic=-1 mitigations=off" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    </dev/null >"$LOG" 2>&1 || true
echo "test-kernels: $KVER ran $(( $(date +%s) - start )) s"
grep -a "^KERNEL-CHECK" "$LOG" | tr -d '\r' || true
# kernel-checks.sh announces its checks ("KERNEL-CHECK PLAN name..."); each planned name
# needs exactly one PASS line. A check that printed nothing, a script that died halfway, or
# a missing plan is a failure, never a quiet pass.
lines=$(grep -a "^KERNEL-CHECK" "$LOG" | tr -d '\r' || true)
plan=$(sed -n 's/^KERNEL-CHECK PLAN //p' <<<"$lines" | head -1)
passed=0 failed=$(grep -c "^KERNEL-CHECK FAIL" <<<"$lines" || true)
missing=()
for name in $plan; do
    case $(grep -cxF "KERNEL-CHECK PASS $name" <<<"$lines" || true) in
        1) passed=$((passed + 1)) ;;
        0) grep -q "^KERNEL-CHECK FAIL $name:" <<<"$lines" || missing+=("$name") ;;
        *) missing+=("$name (several PASS lines)") ;;
    esac
done
if [[ -z $plan ]] || ! grep -q "^KERNEL-CHECK DONE rc=0" <<<"$lines" || ((${#missing[@]} > 0)); then
    if [[ -z $plan ]]; then echo "test-kernels: $KVER: kernel-checks.sh never announced its checks (no PLAN line)" >&2
    else echo "test-kernels: $KVER: planned: $plan; without a PASS or FAIL line: ${missing[*]:-none}; finished: $(grep -q "^KERNEL-CHECK DONE rc=0" <<<"$lines" && echo yes || echo no)" >&2; fi
    echo "test-kernels: console tail:" >&2
    tail -n 40 "$LOG" | tr -d '\r' >&2
    failed=$((failed + ${#missing[@]} + 1))
fi
echo "kernel $KVER: $passed of $(wc -w <<<"$plan") planned checks passed, $failed failed"
[[ ${1:-} == --keep ]] || rm -rf "$WORK/initrd-$KVER"
((failed == 0))
