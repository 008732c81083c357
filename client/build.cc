// `distctl build list` and `distctl build close NAME`.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/connect.h"
#include "client/print.h"
#include "client/rpc.h"
#include "client/tables.h"
#include "common/exit_codes.h"

namespace distd::client {
namespace {

constexpr char kDescription[] = R"(the builds distd knows: list them, or close one
  distctl build list
  distctl build close NAME)";

int List(const Connection& connection) {
  v1::ListBuildsResponse response;
  const int code =
      CallDistd(connection, &v1::Distd::Stub::ListBuilds, v1::ListBuildsRequest(), &response);
  if (code != kExitOk) return code;
  Out(response.builds_size() == 0 ? "no builds\n"
                                  : FormatBuilds(response.builds(), ColourOn(STDOUT_FILENO)));
  return kExitOk;
}

int Close(const Connection& connection, const std::string& name) {
  v1::CloseBuildRequest request;
  request.set_build(name);
  v1::CloseBuildResponse response;
  return CallDistd(connection, &v1::Distd::Stub::CloseBuild, request, &response);
}

}  // namespace

void AddBuildCommand(const CommandSite& site) {
  CLI::App* build = AddSubcommand(site, "build", kDescription);
  if (build == nullptr) return;
  build->require_subcommand(1);
  const CommandSite within{build, site.global, site.action, ""};
  CLI::App* list =
      AddSubcommand(within, "list", "the builds distd knows: state, jobs by state, first failure");
  list->callback([site] {
    *site.action = [global = site.global] {
      absl::StatusOr<Connection> connection = Connect(*global);
      if (!connection.ok()) return ReportConnectError(connection.status());
      return List(*connection);
    };
  });
  CLI::App* close =
      AddSubcommand(within, "close", R"(forgets build NAME, so that its name can be used afresh
A failed build refuses new jobs until it is closed. Refused (exit 125) while jobs of it
are queued or running.)");
  auto name = std::make_shared<std::string>();
  close->add_option("NAME", *name, "the build")
      ->required()
      ->check(CLI::Validator(
          [](std::string& value) { return value.empty() ? "the build name is empty" : ""; }, ""));
  close->callback([site, name] {
    *site.action = [global = site.global, name] {
      absl::StatusOr<Connection> connection = Connect(*global);
      if (!connection.ok()) return ReportConnectError(connection.status());
      return Close(*connection, *name);
    };
  });
}

}  // namespace distd::client
