// The main of every test binary: GoogleTest, with the engine's logging kept to warnings so
// that failures stand out. DISTD_TEST_LOG=debug (or info, ...) shows more.
#include <cstdlib>

#include "gtest/gtest.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  const char* level = std::getenv("DISTD_TEST_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
