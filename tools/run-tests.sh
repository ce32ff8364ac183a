#!/bin/bash
# Every test alknet has, as CI runs them: the full suite (including the real-systemd
# container test) on a --werror build, the suite again under ASan+UBSan, the unit tests
# under valgrind, the tunnel and server tests with the daemons under valgrind, and every
# libFuzzer target for a minute.
# Usage: sudo tools/run-tests.sh        (root: the systemd test boots a container)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}

banner() { printf '\n======== %s ========\n' "$*"; }

# Sets up a build directory, or reconfigures an existing one with these options.
setup() {
        local dir=$1
        shift
        if [[ -f $dir/build.ninja ]]; then
                meson setup --reconfigure "$dir" "$@"
        else
                meson setup "$dir" "$@"
        fi
}

stages=()
failed_stages=0
meson_logs=()
# stage NAME TESTLOG CMD...: runs a meson test stage, remembers its outcome and its JSON
# log (for the closing count) and goes on with the next.
stage() {
        local name=$1 log=$2
        shift 2
        rm -f "$log"
        if "$@"; then
                stages+=("ok      $name")
                meson_logs+=("ok:$log")
        else
                stages+=("FAILED  $name")
                meson_logs+=("fail:$log")
                failed_stages=$((failed_stages + 1))
        fi
}

if [[ $EUID -ne 0 ]]; then
        echo "run-tests: run as root: sudo tools/run-tests.sh" >&2
        exit 1
fi

banner "dependencies"
tools/deps.sh

banner "build (gcc, --werror)"
setup build -Dwerror=true
meson compile -C build

banner "tests: unit, integration, units, systemd container"
stage "tests" build/meson-logs/testlog.json meson test -C build -v --print-errorlogs

banner "build (ASan+UBSan)"
setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan

banner "tests under ASan+UBSan (without the container test)"
stage "tests (ASan+UBSan)" build-asan/meson-logs/testlog.json env \
        ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
        UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
        meson test -C build-asan -v --print-errorlogs --no-suite systemd

banner "unit tests under valgrind"
stage "unit tests (valgrind)" build/meson-logs/testlog-valgrind.json meson test -C build --setup=valgrind --suite unit -v --print-errorlogs

banner "tunnel and server tests with the daemons under valgrind"
# Smaller transfers: valgrind runs the daemon about 30 times slower. The kill/restart
# rounds of test-tunnel and the server's takeover and limit checks run in full.
stage "tunnel and server tests (daemons under valgrind)" build/meson-logs/testlog-tunnel-valgrind.json env \
        ALKNET_VALGRIND=1 ALKNET_TEST_SIZE_MIB=16 ALKNET_TEST_PARALLEL=10 \
        meson test -C build --no-rebuild test-tunnel test-server test-server-tls -v --print-errorlogs \
        --timeout-multiplier 3 --logbase testlog-tunnel-valgrind

banner "build (clang, libFuzzer)"
# The fuzz targets live under tests/, so the tests stay enabled in this build. Every
# executable named fuzz-* is a target; its seeds are in tests/fuzz/corpus-NAME.
CC=clang setup build-fuzz -Dfuzz=true
mapfile -t fuzzers < <(meson introspect --targets build-fuzz | python3 -c '
import json, sys
for t in sorted(json.load(sys.stdin), key=lambda t: t["name"]):
    if t["type"] == "executable" and t["name"].startswith("fuzz-"):
        print(t["name"])
')
if [[ ${#fuzzers[@]} -eq 0 ]]; then
        echo "run-tests: no fuzz targets found in build-fuzz" >&2
        exit 1
fi
meson compile -C build-fuzz "${fuzzers[@]}"

banner "fuzzing ${fuzzers[*]}, ${FUZZ_SECONDS}s each"
# One target per core at a time. New inputs go to a scratch directory (the committed
# corpus is only read); a crash leaves its input in build-fuzz/artifacts/.
mkdir -p build-fuzz/artifacts
jobs_max=$(nproc)
fuzz_passed=0
fuzz_failed=0
fuzz_pids=()
fuzz_names=()

fuzz_wait() {
        local i name
        for i in "${!fuzz_pids[@]}"; do
                name=${fuzz_names[$i]}
                if wait "${fuzz_pids[$i]}"; then
                        tail -n 12 "build-fuzz/$name.log"
                        stages+=("ok      $name")
                        fuzz_passed=$((fuzz_passed + 1))
                else
                        tail -n 80 "build-fuzz/$name.log"
                        echo "$name FAILED; reproducer in build-fuzz/artifacts/"
                        stages+=("FAILED  $name")
                        failed_stages=$((failed_stages + 1))
                        fuzz_failed=$((fuzz_failed + 1))
                fi
        done
        fuzz_pids=()
        fuzz_names=()
}

for name in "${fuzzers[@]}"; do
        seeds=tests/fuzz/corpus-${name#fuzz-}
        scratch=build-fuzz/corpus-${name#fuzz-}
        rm -rf "$scratch"
        mkdir -p "$scratch"
        corpus=()
        [[ -d $seeds ]] && corpus=("$seeds")
        echo "$name: ${FUZZ_SECONDS}s, seeds from ${corpus[*]:-(none)}"
        "build-fuzz/tests/fuzz/$name" \
                -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$name-" \
                "$scratch" "${corpus[@]}" >"build-fuzz/$name.log" 2>&1 &
        fuzz_pids+=($!)
        fuzz_names+=("$name")
        [[ ${#fuzz_pids[@]} -lt $jobs_max ]] || fuzz_wait
done
fuzz_wait

banner "summary"
printf '%s\n' "${stages[@]}"
# One closing line over every test run above: meson's results from its JSON logs, plus
# one entry per fuzz target. A stage that failed without a failed test in its log (it
# did not build, or meson itself failed) counts as one failure.
python3 - "$fuzz_passed" "$fuzz_failed" "${meson_logs[@]}" <<'PY'
import json, os, sys

passed, failed, skipped = int(sys.argv[1]), int(sys.argv[2]), 0
for entry in sys.argv[3:]:
    status, path = entry.split(":", 1)
    stage_failed = 0
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                result = json.loads(line).get("result")
                if result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif result == "SKIP":
                    skipped += 1
                else:
                    stage_failed += 1
    if status == "fail" and stage_failed == 0:
        stage_failed = 1
    failed += stage_failed
print("total: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
PY

[[ $failed_stages -eq 0 ]]
