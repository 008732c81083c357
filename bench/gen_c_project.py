#!/usr/bin/env python3
"""Generates a small C project for the launcher benchmark (W8): N translation units of a few
functions each, plus a CMakeLists.txt that builds them into one static library.

Usage: gen_c_project.py DIR [N]   (N defaults to 300)

Each file is different (its functions are numbered) and a little work to optimise, so that a
compile takes tens of milliseconds, as a small real project's files do, rather than the
microseconds of an empty file that would make the benchmark measure only process start-up.
"""
import pathlib
import sys

TEMPLATE = """\
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct record_{i} {{
  uint32_t key;
  uint32_t weight;
  char name[24];
}};

static uint32_t mix_{i}(uint32_t x) {{
  x ^= x >> 16;
  x *= 0x7feb352dU + {i}U;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}}

static int compare_{i}(const struct record_{i} *a, const struct record_{i} *b) {{
  if (a->weight != b->weight) return a->weight < b->weight ? -1 : 1;
  return strcmp(a->name, b->name);
}}

void sort_records_{i}(struct record_{i} *records, size_t n) {{
  for (size_t i = 1; i < n; ++i) {{
    struct record_{i} r = records[i];
    size_t j = i;
    while (j > 0 && compare_{i}(&r, &records[j - 1]) < 0) {{
      records[j] = records[j - 1];
      --j;
    }}
    records[j] = r;
  }}
}}

uint64_t checksum_{i}(const struct record_{i} *records, size_t n) {{
  uint64_t sum = {i};
  for (size_t i = 0; i < n; ++i) {{
    sum = sum * 31 + mix_{i}(records[i].key ^ records[i].weight);
    for (size_t k = 0; k < sizeof records[i].name && records[i].name[k]; ++k) {{
      sum += (uint64_t)records[i].name[k] << (k % 8);
    }}
  }}
  return sum;
}}

size_t fill_records_{i}(struct record_{i} *records, size_t n, uint32_t seed) {{
  for (size_t i = 0; i < n; ++i) {{
    seed = mix_{i}(seed + (uint32_t)i);
    records[i].key = seed;
    records[i].weight = seed % 1000;
    for (size_t k = 0; k + 1 < sizeof records[i].name; ++k) {{
      records[i].name[k] = (char)('a' + (mix_{i}(seed + (uint32_t)k) % 26));
    }}
    records[i].name[sizeof records[i].name - 1] = 0;
  }}
  return n;
}}
"""

CMAKE = """\
cmake_minimum_required(VERSION 3.16)
project(generated C)
file(GLOB SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/src/*.c)
add_library(generated STATIC ${SOURCES})
target_compile_options(generated PRIVATE -O2)
"""


def generate(root: pathlib.Path, count: int) -> None:
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (src / f"unit_{i:04d}.c").write_text(TEMPLATE.format(i=i))
    (root / "CMakeLists.txt").write_text(CMAKE)


def main() -> int:
    if len(sys.argv) not in (2, 3):
        usage = next(line for line in __doc__.splitlines() if line.startswith("Usage:"))
        print(usage, file=sys.stderr)
        return 2
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 300
    if count < 1:
        print("gen_c_project.py: N must be at least 1", file=sys.stderr)
        return 2
    generate(pathlib.Path(sys.argv[1]), count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
