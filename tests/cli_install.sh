#!/usr/bin/env bash
# cli_install.sh — `cmake --install` gives a CMake package: another project finds it with
# find_package(dptrain), links dptrain::dptrain, and runs.
# dpt-test: timeout=240
set -u
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cmake --install "$DPT_BINARY_DIR" --prefix "$dir/prefix" > "$dir/install.log" 2>&1 || { cat "$dir/install.log"; exit 1; }
mkdir -p "$dir/app"
cat > "$dir/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(dptrain REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE dptrain::dptrain)
CM
cat > "$dir/app/main.c" <<'C'
#include <stdio.h>
#include "dptrain/comm.h"
#include "dptrain/types.h"
int main(void) {
  int64_t b, c;
  dpt_shard_range(10, 3, 1, &b, &c); /* rows 4..6 of 10 over 3 parts */
  printf("%s %lld %lld\n", dpt_dtype_name(DPT_F32), (long long)b, (long long)c);
  return 0;
}
C
cmake -S "$dir/app" -B "$dir/app/build" -DCMAKE_PREFIX_PATH="$dir/prefix" > "$dir/cfg.log" 2>&1 || { cat "$dir/cfg.log"; exit 1; }
cmake --build "$dir/app/build" > "$dir/build.log" 2>&1 || { cat "$dir/build.log"; exit 1; }
out=$("$dir/app/build/consumer")
[ "$out" = "f32 4 3" ] || { echo "FAIL: consumer printed '$out', expected 'f32 4 3'"; exit 1; }
[ -x "$dir/prefix/bin/dptrain" ] || { echo "FAIL: dptrain not installed"; exit 1; }
echo "ok: find_package(dptrain) consumer builds and runs; dptrain installed"
