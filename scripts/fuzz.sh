#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through cargo fuzz) of what root on the node feeds the
# agent: dpkg's database files, rpm headers, the SQLite reader on whole rpmdb.sqlite files,
# apk's installed database, and the standalone configuration.
#
#   scripts/fuzz.sh                # every target, KUBEFIM_FUZZ_SECONDS (60) each
#   scripts/fuzz.sh sqlite 600     # one target, longer
#
# Seeds are real files: this machine's own dpkg status and info files, an rpmdb.sqlite that
# rpm --root writes after installing a package rpmbuild made (and its header blobs), an apk
# database in apk's format (fuzz/seeds/apk), and the example configurations. What libFuzzer
# adds to the corpus stays under target/fuzz-corpus, outside the repository. A crash, a hang
# (over 10 s for one input) or an input that takes over 2 GiB fails the run, and the input is
# copied to fuzz/regressions/<target>/: commit it, and `tests/fuzz_regressions.rs` replays it
# in every test run from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${2:-${KUBEFIM_FUZZ_SECONDS:-60}}
targets=${1:-all}
[ "$targets" = all ] && targets="dpkg rpm_header sqlite apk config"

if ! cargo fuzz --help >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
# cargo fuzz passes rustc the sanitizer-coverage flags that only a nightly compiler accepts;
# the machine's one toolchain is stable, and RUSTC_BOOTSTRAP lets it take them. Only this
# build (its own workspace, fuzz/, its own target directory) sees the variable.
export RUSTC_BOOTSTRAP=1

corpus=$PWD/target/fuzz-corpus
seeds() {
  local dir=$corpus/$1
  mkdir -p "$dir"
  case $1 in
    dpkg)
      # The first byte picks the file (node-agent/src/fuzzing.rs): 0 status, 1 md5sums, 2 list,
      # 3 an update-alternatives group.
      local status=/var/lib/dpkg/status
      { printf '\0'; awk 'BEGIN{RS="";ORS="\n\n"} NR<=40' "$status"; } > "$dir/status"
      { printf '\0'; awk 'BEGIN{RS="";ORS="\n\n"} NR<=5' "$status"; printf '\0';
        awk 'BEGIN{RS="";ORS="\n\n"} NR==6' "$status"; } > "$dir/status-with-update"
      local info
      for info in coreutils bash login; do
        for arch in "" ":amd64"; do
          if [ -f "/var/lib/dpkg/info/$info$arch.md5sums" ]; then
            { printf '\1'; head -n 40 "/var/lib/dpkg/info/$info$arch.md5sums"; } > "$dir/$info.md5sums"
            { printf '\2'; head -n 40 "/var/lib/dpkg/info/$info$arch.list"; } > "$dir/$info.list"
          fi
        done
      done
      local group
      for group in awk pager editor which; do
        if [ -f "/var/lib/dpkg/alternatives/$group" ]; then
          { printf '\3'; cat "/var/lib/dpkg/alternatives/$group"; } > "$dir/alternatives-$group"
        fi
      done
      ;;
    sqlite | rpm_header)
      rpm_seeds
      if [ "$1" = sqlite ]; then
        cp "$rpmroot/var/lib/rpm/rpmdb.sqlite" "$dir/rpmdb.sqlite"
        cp "$rpmroot/empty/rpmdb.sqlite" "$dir/empty.sqlite"
      else
        python3 - "$rpmroot/var/lib/rpm/rpmdb.sqlite" "$dir" <<'PY'
import sqlite3, sys
for hnum, blob in sqlite3.connect(sys.argv[1]).execute("SELECT hnum, blob FROM Packages"):
    open(f"{sys.argv[2]}/header-{hnum}", "wb").write(blob)
PY
      fi
      ;;
    apk) cp fuzz/seeds/apk/* "$dir/" ;;
    config) cp examples/*.yaml "$dir/" ;;
  esac
}

rpmroot=
rpm_seeds() {
  if [ -n "$rpmroot" ]; then return; fi
  command -v rpmbuild >/dev/null || scripts/install-tools.sh
  rpmroot=$corpus/rpm-root
  rm -rf "$rpmroot" && mkdir -p "$rpmroot/empty" "$rpmroot/build/SPECS"
  rpm --dbpath "$rpmroot/empty" --initdb 2>/dev/null
  cat > "$rpmroot/build/SPECS/seed.spec" <<'SPEC'
Name: kubefim-seed
Version: 1.0
Release: 1
Summary: a package for the fuzz seeds
License: Apache-2.0
BuildArch: noarch
%description
Files of every kind rpm records.
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc/seed
printf 'tool\n' > %{buildroot}/usr/bin/seed-tool
printf 'key = value\n' > %{buildroot}/etc/seed/seed.conf
ln -s seed-tool %{buildroot}/usr/bin/seed-link
%files
%attr(0755,root,root) /usr/bin/seed-tool
/usr/bin/seed-link
%config(noreplace) /etc/seed/seed.conf
%dir /etc/seed
SPEC
  rpmbuild --quiet --define "_topdir $rpmroot/build" --define '_binary_filedigest_algorithm 8' -bb "$rpmroot/build/SPECS/seed.spec"
  mkdir -p "$rpmroot/var/lib/rpm"
  rpm --root "$rpmroot" --dbpath /var/lib/rpm --initdb 2>/dev/null
  # Debian's rpm warns that it is not Debian's package manager; the database it writes is rpm's.
  rpm --root "$rpmroot" --dbpath /var/lib/rpm -i --nodeps --noscripts --nosignature --nodigest \
    "$rpmroot"/build/RPMS/noarch/*.rpm 2>/dev/null
}

failed=
for target in $targets; do
  seeds "$target"
  echo "fuzz: $target for ${seconds}s, seeds: $(ls "$corpus/$target" | wc -l) files" >&2
  artifacts=$corpus/artifacts/$target
  mkdir -p "$artifacts"
  log=$corpus/$target.log
  rc=0
  (cd fuzz && cargo fuzz run --sanitizer none "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" \
    -print_final_stats=1) > "$log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked' "$log" >&2 || true
  if [ -n "$(ls -A "$artifacts")" ]; then
    mkdir -p "fuzz/regressions/$target"
    cp "$artifacts"/* "fuzz/regressions/$target/"
    echo "fuzz: $target found $(ls "$artifacts" | wc -l) failing inputs, copied to fuzz/regressions/$target/" >&2
    failed=1
  elif [ "$rc" -ne 0 ]; then
    tail -n 30 "$log" >&2
    echo "fuzz: $target did not run (exit $rc; log $log)" >&2
    failed=1
  fi
done
[ -z "$failed" ] || exit 1
echo "fuzz: no crash, hang or runaway memory in: $targets" >&2
