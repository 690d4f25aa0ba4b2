// `topicflow keygen NAME...`: CURVE key pairs for deployments across hosts (README, "Deploying
// across hosts").
#include <topicflow/cli.hpp>
#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>

#include <filesystem>
#include <ostream>
#include <stdexcept>

namespace topicflow::cli {

void add_keygen_options(CLI::App& app, KeygenOptions& o) {
  app.add_option("NAME", o.names,
                 "key pair names: writes NAME.key (secret, mode 0600) and NAME.pub")
      ->required();
  // No TOPICFLOW_DIR: a variable that generic must not silently decide where secrets are written.
  app.add_option("--dir", o.dir, "directory to write the files into (no environment variable)")
      ->type_name("DIR")
      ->capture_default_str();
  app.add_flag("--force", o.force, "overwrite existing key files");
}

int keygen_command(const KeygenOptions& o, std::ostream& out) {
  if (!std::filesystem::is_directory(o.dir)) {
    throw std::runtime_error("--dir '" + o.dir + "' is not a directory");
  }
  for (const auto& name : o.names) {
    const auto keys = generate_curve_keypair();
    write_key_files(o.dir, name, keys, o.force);
    const auto base = (std::filesystem::path(o.dir) / name).string();
    out << base << ".key (secret: keep it on its host)  " << base << ".pub  public key "
        << keys.public_key << "\n";
  }
  return 0;
}

}  // namespace topicflow::cli
