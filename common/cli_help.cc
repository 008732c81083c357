#include "common/cli_help.h"

#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace distd {
namespace {

constexpr size_t kWidth = 80;

// `text` in lines of at most kWidth - `indent` characters (a longer word gets a line of its
// own), joined by a newline and `indent` spaces.
std::string Wrap(const std::string& text, size_t indent) {
  std::vector<std::string> lines(1);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!lines.back().empty() && lines.back().size() + 1 + word.size() > kWidth - indent) {
      lines.emplace_back();
    }
    if (!lines.back().empty()) lines.back().push_back(' ');
    lines.back().append(word.data(), word.size());
  }
  return absl::StrJoin(lines, "\n" + std::string(indent, ' '));
}

}  // namespace

HelpFormatter::HelpFormatter() {
  label("Usage", "usage");
  label("OPTIONS", "FLAGS");
  label("SUBCOMMAND", "COMMAND");
  label("Positionals", "arguments");
  column_width(24);
}

std::string HelpFormatter::make_help(const CLI::App* app, std::string name,
                                     CLI::AppFormatMode mode) const {
  if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
  std::stringstream out;
  out << make_usage(app, std::move(name));
  if (const std::string description = make_description(app); !description.empty()) {
    out << '\n' << description;
  }
  out << make_positionals(app) << make_groups(app, mode) << make_subcommands(app, mode);
  if (const std::string footer = make_footer(app); !footer.empty()) out << '\n' << footer;
  return out.str();
}

std::string HelpFormatter::make_subcommand(const CLI::App* sub) const {
  const std::string& description = sub->get_description();
  std::stringstream out;
  CLI::detail::format_help(out, sub->get_display_name(true),
                           description.substr(0, description.find('\n')), get_column_width());
  return out.str();
}

std::string HelpFormatter::make_option_opts(const CLI::Option* option) const {
  std::string opts;
  // CLI11 names a string value TEXT, which says nothing.
  if (option->get_type_size() != 0 && !option->get_type_name().empty() &&
      option->get_type_name() != "TEXT") {
    opts = " " + option->get_type_name();
  }
  if (option->get_expected_max() == CLI::detail::expected_max_vector_size) opts += " ...";
  return opts;
}

std::string HelpFormatter::make_option(const CLI::Option* option, bool is_positional) const {
  const size_t column = get_column_width();
  std::string names = "  " + make_option_name(option, is_positional) + make_option_opts(option);
  names += names.size() + 2 > column ? "\n" + std::string(column, ' ')
                                     : std::string(column - names.size(), ' ');
  return names + Wrap(make_option_desc(option), column) + "\n";
}

std::string DescribeParseError(const CLI::ParseError& error, const CLI::App& command) {
  const bool required = dynamic_cast<const CLI::RequiredError*>(&error) != nullptr;
  if (!required && dynamic_cast<const CLI::ExtrasError*>(&error) == nullptr) return error.what();
  std::vector<std::string> extras = command.remaining();
  std::erase(extras, "--");
  const bool needs_command = command.get_require_subcommand_min() > 0;
  if (extras.empty()) {
    if (required && needs_command) {
      std::vector<std::string> names;
      for (const CLI::App* sub : command.get_subcommands({})) {
        if (sub->get_name() != "help") names.push_back(sub->get_name());
      }
      return absl::StrCat("missing command (", absl::StrJoin(names, ", "), ")");
    }
    return error.what();
  }
  const std::string& first = extras.front();
  if (first.size() > 1 && first[0] == '-') {
    // A long flag without the value it was given ("--nope", not "--nope=3"); a short one as
    // written ("-bg" is more recognisable than "-b").
    return absl::StrCat("unknown flag ",
                        first[1] == '-' ? first.substr(0, first.find('=')) : first);
  }
  if (needs_command) return absl::StrCat("unknown command \"", first, "\"");
  return absl::StrCat("unexpected argument \"", first, "\"");
}

void UseHelpFormatter(CLI::App* app) {
  app->formatter(std::make_shared<HelpFormatter>());
  app->option_defaults()->group("flags");
  app->footer("");
  // Again, to be in the group (CLI11 made it when it made the app).
  app->set_help_flag("-h,--help", "this help");
}

}  // namespace distd
