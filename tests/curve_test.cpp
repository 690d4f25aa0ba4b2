// Unit tests of ZeroMQ CURVE support (common/src/curve.cpp, common/src/sockets.cpp): key files
// (generation, loading, validation), load_security's rules, the ZAP handler's answers, and real
// sockets on tcp://127.0.0.1:* where only an authorized CURVE client gets through.
#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/sockets.hpp>

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <zmq.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace topicflow {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<CurveServer>);
static_assert(std::is_nothrow_destructible_v<CurveServer>);

using testing::TempDir;

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777U;
}

// The message that `what()` of `f()` carries, or "" when it does not throw std::invalid_argument.
template <typename F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(CurveKeys, LibzmqHasCurve) { ASSERT_TRUE(curve_available()) << "Debian's libzmq5 has CURVE"; }

TEST(CurveKeys, GeneratedPairsAreValidAndDistinct) {
  const auto a = generate_curve_keypair();
  const auto b = generate_curve_keypair();
  EXPECT_TRUE(is_z85_key(a.public_key));
  EXPECT_TRUE(is_z85_key(a.secret_key));
  EXPECT_NE(a.public_key, b.public_key);
  EXPECT_NE(a.public_key, a.secret_key);
  EXPECT_EQ(curve_public_key(a.secret_key), a.public_key);
}

TEST(CurveKeys, Z85ValidationRejectsWrongLengthAndAlphabet) {
  const auto key = generate_curve_keypair().public_key;
  EXPECT_TRUE(is_z85_key(key));
  EXPECT_FALSE(is_z85_key(key.substr(1)));
  EXPECT_FALSE(is_z85_key(key + "0"));
  EXPECT_FALSE(is_z85_key(""));
  for (char bad : {'"', ' ', '~', '\'', ',', '\\'}) {
    auto broken = key;
    broken[7] = bad;
    EXPECT_FALSE(is_z85_key(broken)) << "character " << bad;
  }
  EXPECT_THROW((void)curve_public_key("tooshort"), std::invalid_argument);
}

TEST(CurveKeys, WrittenFilesLoadBackWithTheirModes) {
  TempDir dir;
  const auto keys = generate_curve_keypair();
  write_key_files(dir.path(), "worker", keys);
  EXPECT_EQ(mode_of(dir.path() / "worker.key"), 0600U);
  EXPECT_EQ(mode_of(dir.path() / "worker.pub"), 0644U);
  std::string warning;
  const auto loaded = load_secret_key_file(dir.file("worker.key"), &warning);
  EXPECT_EQ(loaded.public_key, keys.public_key);
  EXPECT_EQ(loaded.secret_key, keys.secret_key);
  EXPECT_EQ(warning, "");
  EXPECT_EQ(load_public_key_file(dir.file("worker.pub")), keys.public_key);
}

TEST(CurveKeys, WriteRefusesToOverwriteUnlessForced) {
  TempDir dir;
  const auto first = generate_curve_keypair();
  const auto second = generate_curve_keypair();
  write_key_files(dir.path(), "a", first);
  EXPECT_THROW(write_key_files(dir.path(), "a", second), std::runtime_error);
  EXPECT_EQ(load_public_key_file(dir.file("a.pub")), first.public_key) << "must be untouched";
  ::chmod(dir.file("a.key").c_str(), 0644);
  write_key_files(dir.path(), "a", second, true);
  EXPECT_EQ(load_public_key_file(dir.file("a.pub")), second.public_key);
  EXPECT_EQ(mode_of(dir.path() / "a.key"), 0600U) << "an overwritten secret is private again";
  EXPECT_THROW(write_key_files(dir.path(), "../x", first), std::runtime_error);
  EXPECT_THROW(write_key_files(dir.path(), "", first), std::runtime_error);
}

TEST(CurveKeys, ReadableSecretKeyGivesAWarning) {
  TempDir dir;
  write_key_files(dir.path(), "s", generate_curve_keypair());
  ::chmod(dir.file("s.key").c_str(), 0644);
  std::string warning;
  (void)load_secret_key_file(dir.file("s.key"), &warning);
  EXPECT_NE(warning.find("chmod 600"), std::string::npos) << warning;
  EXPECT_NE(warning.find("0644"), std::string::npos) << warning;
}

TEST(CurveKeys, PublicAndSecretFilesCannotBeMixedUp) {
  TempDir dir;
  write_key_files(dir.path(), "k", generate_curve_keypair());
  const auto as_public =
      invalid_argument_of([&] { (void)load_public_key_file(dir.file("k.key")); });
  EXPECT_NE(as_public.find("holds a secret key"), std::string::npos) << as_public;
  const auto as_secret =
      invalid_argument_of([&] { (void)load_secret_key_file(dir.file("k.pub")); });
  EXPECT_NE(as_secret.find("no secret-key"), std::string::npos) << as_secret;
}

TEST(CurveKeys, AcceptsBareKeysAndCzmqCertificates) {
  TempDir dir;
  const auto keys = generate_curve_keypair();
  EXPECT_EQ(load_public_key_file(dir.write("bare.pub", "\n  " + keys.public_key + "  \r\n")),
            keys.public_key);
  const auto cert =
      "#   ****  Generated on 2024-01-01 by CZMQ  ****\n"
      "#   ZeroMQ CURVE **Secret** Certificate\n"
      "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n"
      "metadata\n    name = \"host-a\"\n"
      "curve\n    public-key = \"" +
      keys.public_key + "\"\n    secret-key = \"" + keys.secret_key + "\"\n";
  const auto loaded = load_secret_key_file(dir.write("cert_secret", cert));
  EXPECT_EQ(loaded.public_key, keys.public_key);
  EXPECT_EQ(loaded.secret_key, keys.secret_key);
}

TEST(CurveKeys, MalformedFilesAreOneLineErrorsNamingTheFile) {
  TempDir dir;
  const auto keys = generate_curve_keypair();
  const auto other = generate_curve_keypair();
  const std::vector<std::pair<std::string, std::string>> cases{
      {"short.pub", "public-key = \"" + keys.public_key.substr(0, 39) + "\"\n"},
      {"badchar.key", "# x\nsecret-key = \"" + keys.secret_key.substr(0, 39) + "~\"\n"},
      {"empty.pub", "# nothing here\n"},
      {"two.pub", keys.public_key + "\n" + other.public_key + "\n"},
      {"mismatch.key",
       "public-key = \"" + other.public_key + "\"\nsecret-key = \"" + keys.secret_key + "\"\n"},
  };
  for (const auto& [name, text] : cases) {
    const auto path = dir.write(name, text);
    const auto error = invalid_argument_of([&] {
      if (name.ends_with(".key")) {
        (void)load_secret_key_file(path);
      } else {
        (void)load_public_key_file(path);
      }
    });
    EXPECT_NE(error, "") << name << " was accepted";
    EXPECT_NE(error.find(path), std::string::npos) << name << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << name << ": " << error;
  }
  const auto line =
      invalid_argument_of([&] { (void)load_secret_key_file(dir.file("badchar.key")); });
  EXPECT_NE(line.find("badchar.key:2:"), std::string::npos) << line;
  const auto missing =
      invalid_argument_of([&] { (void)load_public_key_file(dir.file("nope.pub")); });
  EXPECT_NE(missing.find("No such file"), std::string::npos) << missing;
  const auto directory =
      invalid_argument_of([&] { (void)load_public_key_file(dir.path().string()); });
  EXPECT_NE(directory.find("not a file"), std::string::npos) << directory;
}

TEST(CurveKeys, AuthorizedKeysFromADirectoryOrAFile) {
  TempDir dir;
  const auto a = generate_curve_keypair();
  const auto b = generate_curve_keypair();
  const auto c = generate_curve_keypair();
  fs::create_directory(dir.path() / "clients");
  write_key_files(dir.path() / "clients", "a", a);
  write_key_files(dir.path() / "clients", "b", b);
  std::ofstream(dir.path() / "clients" / "README") << "not a key\n";
  // The .key files beside them are not *.pub: ignored (only *.pub are read).
  const auto from_dir = load_authorized_keys((dir.path() / "clients").string());
  EXPECT_EQ(from_dir, (std::set<std::string>{a.public_key, b.public_key}));

  const auto file = dir.write(
      "authorized", "# workers\n" + a.public_key + "\npublic-key = \"" + c.public_key + "\"\n");
  EXPECT_EQ(load_authorized_keys(file), (std::set<std::string>{a.public_key, c.public_key}));
  EXPECT_THROW((void)load_authorized_keys(dir.file("clients/a.key")), std::invalid_argument)
      << "a secret key in an authorized list is refused";
  EXPECT_THROW((void)load_authorized_keys(dir.file("missing")), std::invalid_argument);
  fs::create_directory(dir.path() / "empty");
  EXPECT_TRUE(load_authorized_keys((dir.path() / "empty").string()).empty());
}

TEST(CurveSecurity, OffUnlessASecretKeyIsGiven) {
  const auto off = load_security(CurveOptions{}, {.server = true, .broker = true, .sink = true});
  EXPECT_FALSE(off.enabled());
  TempDir dir;
  write_key_files(dir.path(), "server", generate_curve_keypair());
  for (auto set : {&CurveOptions::broker_key, &CurveOptions::sink_key, &CurveOptions::authorized}) {
    CurveOptions o;
    o.*set = dir.file("server.pub");
    const auto error = invalid_argument_of([&] { (void)load_security(o, {}); });
    EXPECT_NE(error.find("needs --curve-secret-key"), std::string::npos) << error;
  }
}

TEST(CurveSecurity, EachRoleNeedsItsKeys) {
  TempDir dir;
  const auto server = generate_curve_keypair();
  const auto worker = generate_curve_keypair();
  write_key_files(dir.path(), "server", server);
  write_key_files(dir.path(), "worker", worker);
  CurveOptions o;
  o.secret_key = dir.file("worker.key");
  auto error = invalid_argument_of([&] { (void)load_security(o, {.broker = true, .sink = true}); });
  EXPECT_NE(error.find("--curve-broker-key is missing"), std::string::npos) << error;
  o.broker_key = dir.file("server.pub");
  error = invalid_argument_of([&] { (void)load_security(o, {.broker = true, .sink = true}); });
  EXPECT_NE(error.find("--curve-sink-key is missing"), std::string::npos) << error;
  o.sink_key = dir.file("server.pub");
  const auto w = load_security(o, {.broker = true, .sink = true});
  ASSERT_TRUE(w.enabled());
  EXPECT_EQ(w.keys->public_key, worker.public_key);
  EXPECT_EQ(w.server_key_for("--backend"), server.public_key);
  EXPECT_EQ(w.server_key_for("--sink"), server.public_key);
  EXPECT_THROW((void)w.server_key_for("--db"), std::logic_error);

  CurveOptions s;
  s.secret_key = dir.file("server.key");
  s.broker_key = dir.file("server.pub");
  error = invalid_argument_of([&] { (void)load_security(s, {.server = true, .broker = true}); });
  EXPECT_NE(error.find("--curve-authorized is missing"), std::string::npos) << error;
  s.authorized = dir.file("worker.pub");
  const auto sink = load_security(s, {.server = true, .broker = true});
  EXPECT_EQ(sink.authorized, (std::set<std::string>{worker.public_key}));
  EXPECT_EQ(sink.authorized_path, dir.file("worker.pub"));

  s.broker_key = dir.file("worker.key");
  error = invalid_argument_of([&] { (void)load_security(s, {.server = true, .broker = true}); });
  EXPECT_EQ(error.rfind("--curve-broker-key: ", 0), 0U) << "errors start with the flag: " << error;
}

TEST(CurveSecurity, FlagsAndEnvironmentFollowTheNamingRule) {
  CurveOptions o;
  CLI::App app;
  add_curve_options(app, o);
  ::setenv("TOPICFLOW_CURVE_SINK_KEY", "/env/sink.pub", 1);
  std::array<std::string, 3> args{"x", "--curve-secret-key", "/flag/me.key"};
  std::array<char*, 3> argv{args[0].data(), args[1].data(), args[2].data()};
  EXPECT_EQ(parse_command_line(app, 3, argv.data()), std::nullopt);
  ::unsetenv("TOPICFLOW_CURVE_SINK_KEY");
  EXPECT_EQ(o.secret_key, "/flag/me.key");
  EXPECT_EQ(o.sink_key, "/env/sink.pub");
  EXPECT_EQ(o.broker_key, "");
}

// ---- the ZAP handler, asked directly ---------------------------------------------------------

std::vector<std::string> zap_ask(zmq::context_t& ctx, const std::vector<std::string>& request) {
  zmq::socket_t req(ctx, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 5000);
  req.connect("inproc://zeromq.zap.01");
  for (std::size_t i = 0; i < request.size(); ++i) {
    req.send(zmq::buffer(request[i]),
             i + 1 < request.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  std::vector<std::string> reply;
  zmq::message_t frame;
  do {
    if (!req.recv(frame)) return {"timeout"};
    reply.push_back(frame.to_string());
  } while (frame.more());
  return reply;
}

std::string binary_key(const std::string& z85) {
  std::string bytes(32, '\0');
  zmq_z85_decode(reinterpret_cast<std::uint8_t*>(bytes.data()), z85.c_str());
  return bytes;
}

TEST(CurveZap, AdmitsAuthorizedKeysOnly) {
  zmq::context_t ctx(1);
  const auto server = generate_curve_keypair();
  const auto good = generate_curve_keypair();
  const auto bad = generate_curve_keypair();
  Security security;
  security.keys = server;
  security.authorized = {good.public_key};
  CurveServer curve(ctx, security);

  auto ask = [&](const std::string& mechanism, const std::string& credentials,
                 const std::string& version = "1.0") {
    return zap_ask(ctx, {version, "req-7", "topicflow", "10.0.0.9", "", mechanism, credentials});
  };
  const auto allowed = ask("CURVE", binary_key(good.public_key));
  ASSERT_EQ(allowed.size(), 6U);
  EXPECT_EQ(allowed[0], "1.0");
  EXPECT_EQ(allowed[1], "req-7") << "the request id is echoed";
  EXPECT_EQ(allowed[2], "200");
  EXPECT_EQ(allowed[4], good.public_key) << "user id: the client's key";
  EXPECT_EQ(ask("CURVE", binary_key(bad.public_key)).at(2), "400");
  EXPECT_EQ(ask("CURVE", binary_key(server.public_key)).at(2), "200")
      << "its own key pair is admitted";
  EXPECT_EQ(ask("NULL", "").at(2), "400");
  EXPECT_EQ(ask("CURVE", "short").at(2), "400");
  EXPECT_EQ(ask("CURVE", binary_key(good.public_key), "2.0").at(2), "500");
  EXPECT_EQ(curve.allowed(), 2U);
  EXPECT_EQ(curve.denied(), 1U);
}

TEST(CurveZap, OnePerContext) {
  zmq::context_t ctx(1);
  Security security;
  security.keys = generate_curve_keypair();
  CurveServer first(ctx, security);
  EXPECT_THROW(CurveServer(ctx, security), std::runtime_error);
  zmq::context_t other(1);
  CurveServer elsewhere(other, security);  // another context has its own
}

// ---- real sockets ----------------------------------------------------------------------------

// A CURVE server PULL socket on tcp://127.0.0.1:* in its own context.
class CurveLink : public ::testing::Test {
 protected:
  void SetUp() override {
    server_keys_ = generate_curve_keypair();
    client_keys_ = generate_curve_keypair();
    Security security;
    security.keys = server_keys_;
    security.authorized = {client_keys_.public_key};
    security.authorized_path = authorized_path_;
    curve_ = std::make_unique<CurveServer>(server_ctx_, security);
    pull_ = make_socket(server_ctx_, zmq::socket_type::pull, {});
    bind_socket(pull_, "--sink", "tcp://127.0.0.1:*", curve_.get());
    endpoint_ = pull_.get(zmq::sockopt::last_endpoint);
  }
  void TearDown() override {
    pull_.close();
    curve_.reset();
  }

  // A client that connects with `security` and sends "hello"; whether the server got it within
  // `wait`.
  bool delivered(const Security& security, std::chrono::milliseconds wait) {
    auto push = make_socket(client_ctx_, zmq::socket_type::push, {});
    connect_socket(push, "--sink", endpoint_, security);
    (void)push.send(zmq::str_buffer("hello"), zmq::send_flags::dontwait);
    zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      if (zmq::poll(&item, 1, 50ms) > 0) {
        zmq::message_t msg;
        EXPECT_TRUE(pull_.recv(msg));
        return msg.to_string() == "hello";
      }
    }
    return false;
  }

  [[nodiscard]] Security client(const CurveKeyPair& keys, const std::string& server_key) const {
    Security s;
    s.keys = keys;
    s.sink_key = server_key;
    return s;
  }

  std::string authorized_path_;
  zmq::context_t server_ctx_{1};
  zmq::context_t client_ctx_{1};
  CurveKeyPair server_keys_;
  CurveKeyPair client_keys_;
  std::unique_ptr<CurveServer> curve_;
  zmq::socket_t pull_;
  std::string endpoint_;
};

TEST_F(CurveLink, AuthorizedClientGetsThrough) {
  EXPECT_TRUE(delivered(client(client_keys_, server_keys_.public_key), 5s));
  EXPECT_GE(curve_->allowed(), 1U);
}

TEST_F(CurveLink, UnauthorizedKeyWrongServerKeyAndPlainTextAreShutOut) {
  EXPECT_FALSE(delivered(client(generate_curve_keypair(), server_keys_.public_key), 700ms))
      << "a key not in the authorized set";
  EXPECT_GE(curve_->denied(), 1U) << "the ZAP handler was asked and said no";
  EXPECT_FALSE(delivered(client(client_keys_, generate_curve_keypair().public_key), 700ms))
      << "an authorized key that trusts the wrong server key";
  EXPECT_FALSE(delivered(Security{}, 700ms)) << "a plain-text (NULL mechanism) client";
  // The control: the same server still serves an authorized client.
  EXPECT_TRUE(delivered(client(client_keys_, server_keys_.public_key), 5s));
}

// Keys added to the authorized directory are admitted without a restart.
class CurveReload : public CurveLink {
 protected:
  void SetUp() override {
    fs::create_directory(dir_.path() / "clients");
    authorized_path_ = (dir_.path() / "clients").string();
    CurveLink::SetUp();
  }
  TempDir dir_{"curve"};
};

// libzmq does not retry a connection whose key was refused, so the key only helps new
// connections (a refused worker is restarted once its key is in place).
TEST_F(CurveReload, KeyAddedToTheDirectoryIsAdmittedForNewConnections) {
  const auto late = generate_curve_keypair();
  EXPECT_FALSE(delivered(client(late, server_keys_.public_key), 700ms)) << "not admitted yet";
  EXPECT_EQ(curve_->denied(), 1U);
  write_key_files(dir_.path() / "clients", "late", late);
  std::this_thread::sleep_for(1100ms);  // the handler re-reads at most once a second
  EXPECT_TRUE(delivered(client(late, server_keys_.public_key), 5s))
      << "still refused after the key was added";
  fs::remove(dir_.path() / "clients" / "late.pub");
  std::this_thread::sleep_for(1100ms);
  EXPECT_FALSE(delivered(client(late, server_keys_.public_key), 700ms))
      << "a removed key is refused again";
}

TEST(CurveEndpoints, LoopbackAndIpcAreLocal) {
  for (const char* e : {"tcp://127.0.0.1:5557", "tcp://127.0.0.2:*", "tcp://[::1]:5557",
                        "tcp://localhost:1", "tcp://lo:5557", "ipc:///tmp/x", "inproc://x"}) {
    EXPECT_TRUE(is_local_endpoint(e)) << e;
  }
  for (const char* e : {"tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://192.168.1.5:5557",
                        "tcp://eth0:5557", "tcp://[::]:5557", "tcp://broker:5557"}) {
    EXPECT_FALSE(is_local_endpoint(e)) << e;
  }
}

}  // namespace
}  // namespace topicflow
