#pragma once
// ZeroMQ CURVE for deployments across hosts: encryption of every connection and authentication
// of every peer, off by default.
//
// Each process has one key pair (`--curve-secret-key FILE`). The processes that bind (broker:
// frontend + backend; sink: sink + events) are CURVE servers: they admit a client only if its
// public key is in `--curve-authorized` (a file of keys or a directory of *.pub files), checked
// by a ZAP handler thread (CurveServer) in the process's ZeroMQ context. The processes that
// connect are CURVE clients: they must know the public key of the server they connect to
// (`--curve-broker-key` for --frontend/--backend, `--curve-sink-key` for --sink/--events).
// A peer without an authorized key, with a wrong server key or without CURVE at all never
// completes the handshake: it can neither send nor receive a single message.
//
// Key files hold Z85 text (40 characters for 32 bytes), in the format of czmq certificates, so
// keys made by czmq's tools or libzmq's curve_keygen work too:
//
//   # comment
//   public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//   secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"    (secret key files only)
//
// A public key may also be given as the bare 40 characters on a line of its own. Loading
// functions throw std::invalid_argument with a one-line reason naming the file.

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace topicflow {

// Key files for CURVE as given on the command line (add_curve_options in config.hpp); all
// empty: CURVE off. Every role takes all four and uses what it needs, so one environment can
// serve every role of a deployment.
struct CurveOptions {
  std::string secret_key;  // --curve-secret-key: this process's key pair (turns CURVE on)
  std::string broker_key;  // --curve-broker-key: the broker's public key
  std::string sink_key;    // --curve-sink-key: the sink's public key
  std::string authorized;  // --curve-authorized: client public keys the broker/sink admit
};

// Z85 text of a CURVE key pair: 40 characters each.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

// Whether this libzmq was built with CURVE (libsodium); Debian's is.
[[nodiscard]] bool curve_available() noexcept;
// True for 40 characters of the Z85 alphabet that decode to 32 bytes.
[[nodiscard]] bool is_z85_key(std::string_view text) noexcept;
// A fresh key pair (throws std::runtime_error when CURVE is not available).
[[nodiscard]] CurveKeyPair generate_curve_keypair();
// The public key of a secret key (both Z85); throws std::invalid_argument for a bad key.
[[nodiscard]] std::string curve_public_key(std::string_view secret_key);

// A secret key file: needs a `secret-key = "..."` line; a `public-key` line, if present, must
// match the secret key. Sets `warning` when others may read the file.
[[nodiscard]] CurveKeyPair load_secret_key_file(const std::string& path,
                                                std::string* warning = nullptr);
// A public key file: exactly one public key; a file holding a secret key is refused (copy the
// .pub file to other hosts, never the .key file).
[[nodiscard]] std::string load_public_key_file(const std::string& path);
// Authorized client keys: a file with one public key per line (labelled or bare), or a
// directory whose *.pub files each hold one (other files are ignored). May be empty.
[[nodiscard]] std::set<std::string> load_authorized_keys(const std::string& path);

// Writes <dir>/<name>.key (mode 0600: the secret) and <dir>/<name>.pub (0644). Refuses to
// overwrite either file unless `force`; throws std::runtime_error with the reason.
void write_key_files(const std::filesystem::path& dir, const std::string& name,
                     const CurveKeyPair& keys, bool force = false);

// What a process uses to secure its sockets: nothing (CURVE off, the default) or its key pair,
// the public keys of the servers it connects to and, if it binds, the client keys it admits.
struct Security {
  std::optional<CurveKeyPair> keys;   // this process; CURVE is on when set
  std::string broker_key;             // Z85 public key of the broker (--frontend, --backend)
  std::string sink_key;               // Z85 public key of the sink (--sink, --events)
  std::set<std::string> authorized;   // Z85 public keys of admitted clients (servers only)
  std::string authorized_path;        // re-read by CurveServer when it changes; empty: fixed set
  std::vector<std::string> warnings;  // found while loading; logged once logging is up

  [[nodiscard]] bool enabled() const noexcept { return keys.has_value(); }
  // The public key of the server behind an endpoint flag: --frontend and --backend are the
  // broker's, --sink and --events the sink's. Throws std::logic_error for any other flag, or
  // when that key is missing.
  [[nodiscard]] const std::string& server_key_for(std::string_view flag) const;
};

// Which keys a role needs when CURVE is on.
struct CurveNeeds {
  bool server = false;  // binds: needs --curve-authorized
  bool broker = false;  // connects to --frontend or --backend: needs --curve-broker-key
  bool sink = false;    // connects to --sink or --events: needs --curve-sink-key
};

// Loads the files named in `options`. All empty: CURVE off. A key option without
// --curve-secret-key, a missing option the role needs, an unreadable or malformed file, or a
// libzmq without CURVE: std::invalid_argument with a one-line reason (main exits 2).
[[nodiscard]] Security load_security(const CurveOptions& options, CurveNeeds needs);

// Logs, once logging is set up, whether CURVE is on, this process's public key, how many clients
// are admitted, and the warnings found while loading.
void log_security(const Security& security);

// The CURVE server side of one ZeroMQ context: the process's key pair, and a ZAP handler thread
// (RFC 27, on inproc://zeromq.zap.01) that admits a client only if its public key is authorized
// (the process's own public key always is: a process sharing this key pair is this one's twin).
// Sockets bound through bind_socket(..., this) are CURVE servers. One per context: the
// constructor throws std::runtime_error if the context already has a ZAP handler. The key set is
// re-read from security.authorized_path at most once a second while clients connect, so adding
// or removing a key file takes effect for new connections without a restart. Counters may be read
// from any thread; the destructor stops and joins the thread.
class CurveServer {
 public:
  CurveServer(zmq::context_t& context, const Security& security);
  ~CurveServer();
  CurveServer(const CurveServer&) = delete;
  CurveServer& operator=(const CurveServer&) = delete;

  // Makes `socket` a CURVE server with this key pair; call before bind.
  void apply(zmq::socket_t& socket) const;

  [[nodiscard]] std::uint64_t allowed() const noexcept { return allowed_.load(); }
  [[nodiscard]] std::uint64_t denied() const noexcept { return denied_.load(); }

 private:
  void serve();
  bool authorized(const std::string& key);

  CurveKeyPair keys_;
  std::set<std::string> authorized_;  // the handler thread's
  std::string authorized_path_;
  std::int64_t loaded_ms_ = 0;
  zmq::socket_t handler_;  // REP on inproc://zeromq.zap.01, used by the thread only
  zmq::socket_t stop_;     // PAIR to the thread: one message means stop
  zmq::socket_t stop_peer_;
  std::atomic<std::uint64_t> allowed_{0};
  std::atomic<std::uint64_t> denied_{0};
  std::thread thread_;
};

}  // namespace topicflow
