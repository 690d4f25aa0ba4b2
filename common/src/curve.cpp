#include <topicflow/curve.hpp>

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace topicflow {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kZ85KeyChars = 40;
constexpr std::size_t kKeyBytes = 32;
constexpr std::uintmax_t kMaxKeyFileBytes = std::uintmax_t{64} * 1024;  // a key file is ~150 bytes
constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::int64_t kReloadIntervalMs = 1000;

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string read_key_file(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw std::invalid_argument("cannot read '" + path + "': " +
                                (ec ? ec.message() : std::string("No such file or directory")));
  }
  if (!fs::is_regular_file(status)) throw std::invalid_argument("'" + path + "' is not a file");
  if (fs::file_size(path, ec) > kMaxKeyFileBytes) {
    throw std::invalid_argument("'" + path + "' is too large for a key file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read '" + path + "': " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ParsedKeys {
  std::vector<std::string> public_keys;
  std::vector<std::string> secret_keys;
};

// Lines `public-key = "..."` / `secret-key = "..."` (quotes optional), a bare 40-character
// public key, comments (#) and anything else of a czmq certificate (section names, metadata),
// which is ignored.
ParsedKeys parse_keys(const std::string& path, const std::string& text) {
  ParsedKeys keys;
  std::istringstream in(text);
  int number = 0;
  for (std::string raw; std::getline(in, raw);) {
    ++number;
    const auto line = trim(raw);
    if (line.empty()) continue;
    if (is_z85_key(line)) {
      keys.public_keys.emplace_back(line);
      continue;
    }
    if (line.front() == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    const auto name = trim(line.substr(0, eq));
    if (name != "public-key" && name != "secret-key") continue;
    auto value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!is_z85_key(value)) {
      throw std::invalid_argument(path + ":" + std::to_string(number) + ": " + std::string(name) +
                                  " is not a CURVE key (40 Z85 characters)");
    }
    (name == "public-key" ? keys.public_keys : keys.secret_keys).emplace_back(value);
  }
  return keys;
}

std::array<std::uint8_t, kKeyBytes> decode_key(const std::string& z85) {
  std::array<std::uint8_t, kKeyBytes> bytes{};
  if (!is_z85_key(z85) || zmq_z85_decode(bytes.data(), z85.c_str()) == nullptr) {
    throw std::invalid_argument("not a CURVE key (40 Z85 characters)");
  }
  return bytes;
}

void write_file(const fs::path& path, const std::string& text, mode_t mode, bool force) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0)
    throw std::runtime_error("cannot write '" + path.string() + "': " + std::strerror(errno));
  bool ok = ::fchmod(fd, mode) == 0;  // an overwritten file keeps its old mode otherwise
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  const int saved = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    throw std::runtime_error("cannot write '" + path.string() +
                             "': " + std::strerror(saved != 0 ? saved : errno));
  }
}

}  // namespace

bool curve_available() noexcept { return zmq_has("curve") != 0; }

bool is_z85_key(std::string_view text) noexcept {
  if (text.size() != kZ85KeyChars) return false;
  if (!std::all_of(text.begin(), text.end(),
                   [](char c) { return kZ85Alphabet.find(c) != std::string_view::npos; })) {
    return false;
  }
  std::array<std::uint8_t, kKeyBytes> bytes{};
  const std::string copy(text);  // zmq_z85_decode wants a terminated string
  return zmq_z85_decode(bytes.data(), copy.c_str()) != nullptr;
}

CurveKeyPair generate_curve_keypair() {
  if (!curve_available()) throw std::runtime_error("this libzmq was built without CURVE");
  std::array<char, kZ85KeyChars + 1> pub{};
  std::array<char, kZ85KeyChars + 1> sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    throw std::runtime_error(std::string("cannot generate a CURVE key pair: ") +
                             zmq_strerror(zmq_errno()));
  }
  return {std::string(pub.data()), std::string(sec.data())};
}

std::string curve_public_key(std::string_view secret_key) {
  if (!is_z85_key(secret_key)) throw std::invalid_argument("not a CURVE key (40 Z85 characters)");
  const std::string secret(secret_key);
  std::array<char, kZ85KeyChars + 1> pub{};
  if (zmq_curve_public(pub.data(), secret.c_str()) != 0) {
    throw std::invalid_argument(std::string("cannot derive the public key: ") +
                                zmq_strerror(zmq_errno()));
  }
  return {pub.data()};
}

CurveKeyPair load_secret_key_file(const std::string& path, std::string* warning) {
  const auto keys = parse_keys(path, read_key_file(path));
  if (keys.secret_keys.empty()) {
    throw std::invalid_argument("no secret-key in '" + path +
                                "' (a public key? give the .key file of `topicflow keygen`)");
  }
  if (keys.secret_keys.size() > 1)
    throw std::invalid_argument("more than one secret-key in '" + path + "'");
  CurveKeyPair pair{curve_public_key(keys.secret_keys.front()), keys.secret_keys.front()};
  for (const auto& pub : keys.public_keys) {
    if (pub != pair.public_key) {
      throw std::invalid_argument("'" + path +
                                  "': its public-key does not belong to its secret-key");
    }
  }
  struct stat st {};
  if (warning != nullptr && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077U) != 0) {
    std::ostringstream mode;
    mode << std::oct << (st.st_mode & 0777U);
    *warning = "secret key '" + path + "' can be read by other users (mode 0" + mode.str() +
               "): chmod 600 it";
  }
  return pair;
}

std::string load_public_key_file(const std::string& path) {
  const auto keys = parse_keys(path, read_key_file(path));
  if (!keys.secret_keys.empty()) {
    throw std::invalid_argument("'" + path +
                                "' holds a secret key: give the public key (.pub), and keep the "
                                ".key file on its own host");
  }
  if (keys.public_keys.empty()) {
    throw std::invalid_argument("no public key in '" + path +
                                "' (expected a line public-key = \"<40 Z85 characters>\")");
  }
  if (keys.public_keys.size() > 1)
    throw std::invalid_argument("more than one public key in '" + path + "'");
  return keys.public_keys.front();
}

std::set<std::string> load_authorized_keys(const std::string& path) {
  std::error_code ec;
  std::set<std::string> out;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      if (entry.path().extension() == ".pub" && entry.is_regular_file())
        files.push_back(entry.path());
    }
    if (ec) throw std::invalid_argument("cannot list '" + path + "': " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) out.insert(load_public_key_file(file.string()));
    return out;
  }
  const auto keys = parse_keys(path, read_key_file(path));
  if (!keys.secret_keys.empty()) {
    throw std::invalid_argument("'" + path + "' holds a secret key: list public keys only");
  }
  out.insert(keys.public_keys.begin(), keys.public_keys.end());
  return out;
}

void write_key_files(const fs::path& dir, const std::string& name, const CurveKeyPair& keys,
                     bool force) {
  if (name.empty() || name.find('/') != std::string::npos || name.front() == '.') {
    throw std::runtime_error("bad key name '" + name + "': use letters, digits, - or _");
  }
  if (!is_z85_key(keys.public_key) || !is_z85_key(keys.secret_key)) {
    throw std::runtime_error("not a CURVE key pair");
  }
  const auto secret_path = dir / (name + ".key");
  const auto public_path = dir / (name + ".pub");
  if (!force) {
    for (const auto& p : {secret_path, public_path}) {
      if (fs::exists(p))
        throw std::runtime_error("'" + p.string() + "' exists (--force overwrites it)");
    }
  }
  write_file(secret_path,
             "# topicflow CURVE key pair \"" + name +
                 "\": keep this file private (mode 0600).\n"
                 "# Give " +
                 name +
                 ".pub to the peers that must know or admit this key.\n"
                 "public-key = \"" +
                 keys.public_key +
                 "\"\n"
                 "secret-key = \"" +
                 keys.secret_key + "\"\n",
             0600, force);
  write_file(public_path,
             "# topicflow CURVE public key \"" + name +
                 "\"\n"
                 "public-key = \"" +
                 keys.public_key + "\"\n",
             0644, force);
}

const std::string& Security::server_key_for(std::string_view flag) const {
  const std::string* key = nullptr;
  if (flag == "--frontend" || flag == "--backend") key = &broker_key;
  if (flag == "--sink" || flag == "--events") key = &sink_key;
  if (key == nullptr) throw std::logic_error("no CURVE server for " + std::string(flag));
  if (key->empty()) {
    throw std::logic_error("CURVE is on but the server key for " + std::string(flag) +
                           " is missing");
  }
  return *key;
}

Security load_security(const CurveOptions& o, CurveNeeds needs) {
  Security security;
  if (o.secret_key.empty()) {
    for (const auto& [flag, value] : {std::pair{"--curve-broker-key", &o.broker_key},
                                      std::pair{"--curve-sink-key", &o.sink_key},
                                      std::pair{"--curve-authorized", &o.authorized}}) {
      if (!value->empty()) {
        throw std::invalid_argument(std::string(flag) +
                                    " needs --curve-secret-key (CURVE is on only with a key pair)");
      }
    }
    return security;
  }
  if (!curve_available()) {
    throw std::invalid_argument(
        "--curve-secret-key: this libzmq was built without CURVE (libsodium)");
  }
  auto with_flag = [](const char* flag, auto load) {
    try {
      return load();
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(flag) + ": " + e.what());
    }
  };
  auto require = [](const char* flag, const std::string& value, const char* why) {
    if (value.empty())
      throw std::invalid_argument("CURVE is on (--curve-secret-key) but " + std::string(flag) +
                                  " is missing: " + why);
  };
  std::string warning;
  security.keys =
      with_flag("--curve-secret-key", [&] { return load_secret_key_file(o.secret_key, &warning); });
  if (!warning.empty()) security.warnings.push_back(warning);
  if (needs.broker) require("--curve-broker-key", o.broker_key, "the broker's public key");
  if (needs.sink) require("--curve-sink-key", o.sink_key, "the sink's public key");
  if (needs.server)
    require("--curve-authorized", o.authorized, "the public keys of the clients to admit");
  if (!o.broker_key.empty()) {
    security.broker_key =
        with_flag("--curve-broker-key", [&] { return load_public_key_file(o.broker_key); });
  }
  if (!o.sink_key.empty()) {
    security.sink_key =
        with_flag("--curve-sink-key", [&] { return load_public_key_file(o.sink_key); });
  }
  if (needs.server) {
    security.authorized =
        with_flag("--curve-authorized", [&] { return load_authorized_keys(o.authorized); });
    security.authorized_path = o.authorized;
    if (security.authorized.empty()) {
      security.warnings.push_back(
          "--curve-authorized '" + o.authorized +
          "' holds no public key yet: no client can connect until one is added");
    }
  }
  return security;
}

void log_security(const Security& security) {
  if (!security.enabled()) {
    spdlog::debug("CURVE off: connections are neither encrypted nor authenticated");
    return;
  }
  if (security.authorized_path.empty()) {
    spdlog::info("CURVE on: public key {}", security.keys->public_key);
  } else {
    spdlog::info("CURVE on: public key {}; {} client key(s) admitted from {}",
                 security.keys->public_key, security.authorized.size(), security.authorized_path);
  }
  for (const auto& w : security.warnings) spdlog::warn("{}", w);
}

// ---- CurveServer ---------------------------------------------------------------------------

CurveServer::CurveServer(zmq::context_t& context, const Security& security)
    : authorized_(security.authorized),
      authorized_path_(security.authorized_path),
      loaded_ms_(steady_ms()),
      handler_(context, zmq::socket_type::rep),
      stop_(context, zmq::socket_type::pair),
      stop_peer_(context, zmq::socket_type::pair) {
  if (!security.enabled()) throw std::logic_error("CurveServer without a key pair");
  keys_ = *security.keys;
  for (auto* s : {&handler_, &stop_, &stop_peer_}) s->set(zmq::sockopt::linger, 0);
  try {
    handler_.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error(std::string("cannot start the CURVE authenticator (") + kZapEndpoint +
                             "): " + e.what());
  }
  const auto pipe =
      "inproc://topicflow-zap-stop-" + std::to_string(reinterpret_cast<std::uintptr_t>(this));
  stop_peer_.bind(pipe);
  stop_.connect(pipe);
  thread_ = std::thread([this] { serve(); });
}

CurveServer::~CurveServer() {
  try {
    stop_.send(zmq::buffer("stop", 4), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {  // ETERM: the thread sees it too and stops
  }
  if (thread_.joinable()) thread_.join();
}

void CurveServer::apply(zmq::socket_t& socket) const {
  const auto secret = decode_key(keys_.secret_key);
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(secret.data(), secret.size()));
  socket.set(zmq::sockopt::zap_domain, "topicflow");
}

bool CurveServer::authorized(const std::string& key) {
  if (key == keys_.public_key) return true;
  const auto now = steady_ms();
  if (!authorized_path_.empty() && now - loaded_ms_ >= kReloadIntervalMs) {
    loaded_ms_ = now;
    try {
      auto fresh = load_authorized_keys(authorized_path_);
      if (fresh != authorized_) {
        spdlog::info("CURVE: {} client key(s) admitted now (was {}), from {}", fresh.size(),
                     authorized_.size(), authorized_path_);
        authorized_ = std::move(fresh);
      }
    } catch (const std::exception& e) {
      spdlog::warn("CURVE: keeping the admitted keys loaded before: {}", e.what());
    }
  }
  return authorized_.contains(key);
}

void CurveServer::serve() {
  RateLimitedLog refused(5000);
  for (;;) {
    std::array<zmq::pollitem_t, 2> items{
        {{handler_.handle(), 0, ZMQ_POLLIN, 0}, {stop_peer_.handle(), 0, ZMQ_POLLIN, 0}}};
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
      if ((items[1].revents & ZMQ_POLLIN) != 0) break;
      if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
      // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials.
      std::vector<zmq::message_t> request;
      do {
        request.emplace_back();
        if (!handler_.recv(request.back())) break;
      } while (request.back().more());
      std::string status = "400";
      std::string text = "not authorized";
      std::string user;
      const auto frame = [&](std::size_t i) {
        return i < request.size() ? request[i].to_string() : std::string();
      };
      if (request.size() < 6 || frame(0) != "1.0") {
        status = "500";
        text = "malformed ZAP request";
      } else if (frame(5) != "CURVE" || request.size() < 7 || request[6].size() != kKeyBytes) {
        text = "CURVE required";
      } else {
        std::array<char, kZ85KeyChars + 1> z85{};
        zmq_z85_encode(z85.data(), request[6].data<std::uint8_t>(), kKeyBytes);
        const std::string key(z85.data());
        if (authorized(key)) {
          status = "200";
          text = "OK";
          user = key;
          allowed_.fetch_add(1);
          spdlog::debug("CURVE: admitted client {} from {}", key, frame(3));
        } else {
          denied_.fetch_add(1);
          refused.warn(fmt::format(
              "CURVE: refused client key {} from {}: not in --curve-authorized", key, frame(3)));
        }
      }
      const std::array<std::string, 6> reply{"1.0", frame(1), status, text, user, ""};
      for (std::size_t i = 0; i < reply.size(); ++i) {
        handler_.send(zmq::buffer(reply[i]),
                      i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      break;  // ETERM: the context is going away
    }
  }
  handler_.close();
  stop_peer_.close();
}

}  // namespace topicflow
