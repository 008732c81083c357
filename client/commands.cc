#include "client/commands.h"

#include "client/args.h"

namespace distd::client {

void AddGlobalFlags(ArgParser* parser, GlobalOptions* global) {
  parser->Option({"--addr"}, "ADDR", [global](const std::string& value) {
    if (value.empty()) return absl::InvalidArgumentError("the address is empty");
    global->addr = value;
    global->addr_source = "--addr";
    return absl::OkStatus();
  });
  parser->Option({"--build"}, "NAME", [global](const std::string& value) {
    if (value.empty()) return absl::InvalidArgumentError("the build name is empty");
    global->build = value;
    global->build_given = true;
    return absl::OkStatus();
  });
}

}  // namespace distd::client
