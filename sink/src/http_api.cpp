#include "http_api.hpp"

#include "api_json.hpp"
#include "api_reads.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/web_assets.hpp>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace topicflow::sink {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Every path, line breaks included ('.' does not match them, and a key may hold one).
const std::string kAnyPath = R"([\s\S]*)";
constexpr int kThreads = 48;       // request threads (live streams hold one each)
constexpr int kMaxStreams = 32;    // concurrent /v1/events clients
constexpr auto kCommitWait = 30s;  // a write not committed by then is answered 503
constexpr std::int64_t kMaxWaitSeconds = 60;
constexpr std::int64_t kJobEventMs = 250;  // at most this often per job on /v1/events
constexpr std::int64_t kSinkEventMs = 1000;
constexpr std::int64_t kKeepAliveMs = 15000;

// ---- the request target, parsed from its raw (percent-encoded) form ---------------------------

struct Target {
  std::vector<std::string> segments;  // decoded path segments, e.g. {"v1", "jobs", "a/b"}
  std::map<std::string, std::string> query;
};

std::optional<Target> parse_target(std::string_view raw) {
  Target t;
  const auto question = raw.find('?');
  const auto path = raw.substr(0, question);
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = std::min(path.find('/', start), path.size());
    auto segment = api::percent_decode(path.substr(start, slash - start), false);
    if (!segment) return std::nullopt;
    t.segments.push_back(std::move(*segment));
    start = slash + 1;
  }
  if (!t.segments.empty() && t.segments.back().empty()) t.segments.pop_back();  // trailing '/'
  if (question != std::string_view::npos) {
    auto query = raw.substr(question + 1);
    while (!query.empty()) {
      const auto amp = std::min(query.find('&'), query.size());
      const auto pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      auto name = api::percent_decode(pair.substr(0, eq), true);
      auto value = api::percent_decode(
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
      if (!name || !value) return std::nullopt;
      if (!name->empty()) t.query[*name] = std::move(*value);
      query = amp < query.size() ? query.substr(amp + 1) : std::string_view();
    }
  }
  return t;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff |= static_cast<unsigned>(
        static_cast<unsigned char>(a[i % std::max<std::size_t>(a.size(), 1)]) ^
        static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

// ---- responses ---------------------------------------------------------------------------------

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(api::dump(body), "application/json");
}

// (returns true: the request was answered, so handlers can `return fail(...)`)
bool fail(httplib::Response& res, int status, std::string_view reason) {
  res.status = status;
  res.set_content(api::error_body(reason), "application/json");
  return true;
}

json summary_json(const api::TopicSummary& t) {
  return json{{"key", t.key},
              {"status", t.status},
              {"attempts", t.attempts},
              {"updated_at", t.updated_at},
              {"error", t.error ? json(*t.error) : json(nullptr)}};
}

json detail_json(const api::TopicDetail& t) {
  json j{{"job", t.job},
         {"key", t.key},
         {"status", t.status},
         {"attempts", t.attempts},
         {"error", t.error ? json(*t.error) : json(nullptr)},
         {"worker", t.worker},
         {"created_at", t.created_at},
         {"updated_at", t.updated_at}};
  api::put_bytes(j, "payload", t.payload);
  if (t.result) {
    api::put_bytes(j, "result", *t.result);
  } else {
    j["result"] = nullptr;
  }
  return j;
}

json snapshot_job_json(const std::string& name, const store::StatusCounts& c, bool paused,
                       std::int64_t wall_ms) {
  store::JobCounts jc;
  jc.job = name;
  for (const auto status : store::kStatuses) {
    jc.by_status[static_cast<std::size_t>(status)] =
        static_cast<std::uint64_t>(std::max<std::int64_t>(c[status], 0));
  }
  jc.paused = paused;
  auto j = api::job_json(jc);
  j["time_ms"] = wall_ms;
  return j;
}

// ---- read-only connections, one per request thread at a time ----------------------------------

class ReaderPool {
 public:
  explicit ReaderPool(std::string path) : path_(std::move(path)) {}

  class Lease {
   public:
    Lease(ReaderPool& pool, std::unique_ptr<api::ApiReader> reader)
        : pool_(pool), reader_(std::move(reader)) {}
    ~Lease() { pool_.give_back(std::move(reader_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    api::ApiReader* operator->() const { return reader_.get(); }

   private:
    ReaderPool& pool_;
    std::unique_ptr<api::ApiReader> reader_;
  };

  Lease take() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        auto reader = std::move(free_.back());
        free_.pop_back();
        return Lease(*this, std::move(reader));
      }
    }
    return Lease(*this, std::make_unique<api::ApiReader>(path_));
  }

 private:
  void give_back(std::unique_ptr<api::ApiReader> reader) {
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(reader));
  }
  std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<api::ApiReader>> free_;
};

}  // namespace

bool is_loopback_address(const std::string& address) {
  return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

struct HttpApi::Impl {
  HttpOptions options;
  ApiInbox& inbox;
  const SharedSnapshot& snapshot;
  ReaderPool readers;
  httplib::Server server;
  std::thread thread;
  int bound_port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<int> streams{0};

  Impl(HttpOptions o, std::string db_path, ApiInbox& i, const SharedSnapshot& s)
      : options(std::move(o)), inbox(i), snapshot(s), readers(std::move(db_path)) {
    server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(10, 0);
    server.set_write_timeout(10, 0);
    server.set_keep_alive_timeout(5);
    // httplib writes a response's headers and body separately: with Nagle on, the body waits
    // for the client's delayed ACK of the headers, ~40 ms per request on a keep-alive
    // connection (HTTP submission ran at 20-30k topics/s, mostly waiting).
    server.set_tcp_nodelay(true);
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      const char* reason = res.status == 413   ? "the body is larger than --http-max-body-bytes"
                           : res.status == 404 ? "not found"
                           : res.status == 400
                               ? "malformed HTTP request (a POST needs a Content-Length header: "
                                 "with curl, add -d '')"
                               : "request refused";
      res.set_content(api::error_body(reason), "application/json");
    });
    server.set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, const std::exception_ptr& ep) {
          std::string what = "internal error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          spdlog::error("http: {} {} failed: {}", req.method, req.path, what);
          fail(res, 500, "internal error: " + what);
        });
    server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Cache-Control", "no-cache");
    });
    auto route = [this](const httplib::Request& req, httplib::Response& res) {
      (void)handle(req, res);
    };
    server.Get(kAnyPath, route);
    server.Post(kAnyPath, route);
    server.Delete(kAnyPath, route);
    server.Put(kAnyPath, route);
    server.Patch(kAnyPath, route);
    server.Options(kAnyPath, route);

    bound_port = options.port > 0 && server.bind_to_port(options.address, options.port)
                     ? options.port
                     : (options.port == 0 ? server.bind_to_any_port(options.address) : -1);
    if (bound_port <= 0) {
      throw std::runtime_error("cannot serve HTTP on " + options.address + ":" +
                               std::to_string(options.port) +
                               " (address in use, or not an address of this host)");
    }
    thread = std::thread([this] { server.listen_after_bind(); });
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    stopping = true;
    snapshot.wake_all();
    server.stop();
    if (thread.joinable()) thread.join();
  }

  // ---- routing -------------------------------------------------------------------------------

  bool handle(const httplib::Request& req, httplib::Response& res) {
    const auto target = parse_target(req.target.empty() ? req.path : req.target);
    if (!target) return fail(res, 400, "the URL is not valid (bad percent-encoding)");
    const auto& seg = target->segments;
    const auto& m = req.method;
    if (seg.empty() || seg[0] != "v1") {
      if (seg.size() == 1 && seg[0] == "healthz") return only(m, "GET", res) && healthz(res);
      if (seg.size() == 1 && seg[0] == "metrics") return only(m, "GET", res) && metrics(res);
      return only(m, "GET", res) && asset(req, res);
    }
    if (seg.size() == 2 && seg[1] == "server") return only(m, "GET", res) && server_info(res);
    if (seg.size() == 2 && seg[1] == "workers") return only(m, "GET", res) && workers(res);
    if (seg.size() == 2 && seg[1] == "events") {
      return only(m, "GET", res) && events(*target, res);
    }
    if (seg.size() == 2 && seg[1] == "jobs") return only(m, "GET", res) && jobs(res);
    if (seg.size() >= 3 && seg[1] == "jobs") {
      const auto& job = seg[2];
      if (auto why = api::check_job_name(job)) return fail(res, 400, *why);
      if (seg.size() == 3) {
        if (m == "GET") return get_job(job, res);
        if (m == "DELETE") return write(req, res) && action(ApiCall::Kind::remove, job, res);
        return method_not_allowed("GET, DELETE", res);
      }
      const auto& what = seg[3];
      if (what == "topics" && seg.size() == 4) {
        if (m == "GET") return topics(job, *target, res);
        if (m == "POST") return write(req, res) && submit(req, job, res);
        return method_not_allowed("GET, POST", res);
      }
      if (what == "topics" && seg.size() == 5) {
        return only(m, "GET", res) && topic(job, seg[4], *target, res);
      }
      if (what == "errors" && seg.size() == 4) {
        return only(m, "GET", res) && errors(job, *target, res);
      }
      static const std::map<std::string, ApiCall::Kind, std::less<>> kActions = {
          {"pause", ApiCall::Kind::pause},
          {"resume", ApiCall::Kind::resume},
          {"cancel", ApiCall::Kind::cancel},
          {"retry-failed", ApiCall::Kind::retry_failed}};
      if (const auto it = kActions.find(what); it != kActions.end() && seg.size() == 4) {
        return only(m, "POST", res) && write(req, res) && action(it->second, job, res);
      }
    }
    return fail(res, 404, "no such endpoint: " + req.path + " (see docs/api.md)");
  }

  static bool only(const std::string& method, std::string_view allowed, httplib::Response& res) {
    if (method == allowed) return true;
    method_not_allowed(allowed, res);
    return false;
  }
  static bool method_not_allowed(std::string_view allowed, httplib::Response& res) {
    res.set_header("Allow", std::string(allowed));
    fail(res, 405, "method not allowed here (allowed: " + std::string(allowed) + ")");
    return false;
  }

  // ---- writes: who may, then through the loop -------------------------------------------------

  bool write(const httplib::Request& req, httplib::Response& res) {
    if (options.read_only) {
      fail(res, 403, "this server is read-only (--http-read-only)");
      return false;
    }
    // A browser's cross-site request must not change anything: it carries an Origin (and
    // Sec-Fetch-Site) that does not name this server.
    if (req.get_header_value("Sec-Fetch-Site") == "cross-site") {
      fail(res, 403, "cross-site request refused");
      return false;
    }
    if (const auto origin = req.get_header_value("Origin"); !origin.empty()) {
      const auto scheme = origin.find("://");
      const auto origin_host =
          lower(scheme == std::string::npos ? origin : origin.substr(scheme + 3));
      if (origin_host != lower(req.get_header_value("Host"))) {
        fail(res, 403, "cross-site request refused (Origin " + origin + " is not this server)");
        return false;
      }
    }
    if (!options.token.empty()) {
      const auto header = req.get_header_value("Authorization");
      constexpr std::string_view kBearer = "Bearer ";
      if (header.rfind(kBearer, 0) != 0 ||
          !constant_time_equal(std::string_view(header).substr(kBearer.size()), options.token)) {
        res.set_header("WWW-Authenticate", "Bearer");
        fail(res, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)");
        return false;
      }
    }
    return true;
  }

  ApiResult through_loop(std::shared_ptr<ApiCall> call) {
    auto future = inbox.post(std::move(call));
    if (future.wait_for(kCommitWait) != std::future_status::ready) {
      return ApiResult{503,
                       "not committed within 30 s: the database is unavailable (see /healthz); "
                       "retry later",
                       {}};
    }
    return future.get();
  }

  bool submit(const httplib::Request& req, const std::string& job, httplib::Response& res) {
    if (lower(req.get_header_value("Content-Type")).rfind("application/json", 0) != 0) {
      fail(res, 400, "Content-Type must be application/json");
      return true;
    }
    auto parsed = api::parse_submission(req.body);
    if (auto* bad = std::get_if<api::BadRequest>(&parsed)) {
      fail(res, bad->status, bad->reason);
      return true;
    }
    auto call = std::make_shared<ApiCall>();
    call->kind = ApiCall::Kind::submit;
    call->job = job;
    call->items = std::move(std::get<std::vector<wire::SubmitItem>>(parsed));
    const auto result = through_loop(call);
    if (result.status != 200) {
      fail(res, result.status, result.error);
      return true;
    }
    const auto& c = result.counts;
    send_json(res, 200,
              json{{"accepted", c.accepted},
                   {"duplicates", c.duplicates},
                   {"skipped_completed", c.skipped_completed},
                   {"skipped_failed", c.skipped_failed},
                   {"already_queued", c.already_queued},
                   {"requeued", c.requeued},
                   {"rejected", json::array()}});
    return true;
  }

  bool action(ApiCall::Kind kind, const std::string& job, httplib::Response& res) {
    auto call = std::make_shared<ApiCall>();
    call->kind = kind;
    call->job = job;
    const auto result = through_loop(call);
    if (result.status != 200) {
      fail(res, result.status, result.error);
      return true;
    }
    if (kind == ApiCall::Kind::remove) {
      send_json(res, 200, json{{"job", job}, {"deleted", result.counts.changed}});
      return true;
    }
    auto counts = readers.take()->job(job);
    json body = counts ? api::job_json(*counts) : json{{"job", job}};
    body["changed"] = result.counts.changed;
    send_json(res, 200, body);
    return true;
  }

  // ---- reads ---------------------------------------------------------------------------------

  bool jobs(httplib::Response& res) {
    json list = json::array();
    for (const auto& j : readers.take()->jobs()) list.push_back(api::job_json(j));
    send_json(res, 200, json{{"jobs", std::move(list)}});
    return true;
  }

  bool get_job(const std::string& job, httplib::Response& res) {
    const auto counts = readers.take()->job(job);
    if (!counts) {
      fail(res, 404, "no job named '" + job + "'");
      return true;
    }
    send_json(res, 200, api::job_json(*counts));
    return true;
  }

  static std::optional<std::int64_t> int_param(const Target& t, const std::string& name,
                                               std::int64_t low, std::int64_t high,
                                               std::int64_t fallback, httplib::Response& res) {
    const auto it = t.query.find(name);
    if (it == t.query.end()) return fallback;
    try {
      std::size_t used = 0;
      const auto v = std::stoll(it->second, &used);
      if (used == it->second.size() && v >= low && v <= high) return v;
    } catch (const std::exception&) {
    }
    fail(res, 400,
         name + " must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
    return std::nullopt;
  }

  bool topics(const std::string& job, const Target& t, httplib::Response& res) {
    std::optional<store::Status> status;
    if (const auto it = t.query.find("status"); it != t.query.end() && !it->second.empty()) {
      status = store::parse_status(it->second);
      if (!status) {
        fail(res, 400,
             "status must be one of pending, running, completed, failed, cancelled (got '" +
                 it->second + "')");
        return true;
      }
    }
    const auto limit = int_param(t, "limit", 1, 1000, 100, res);
    if (!limit) return true;
    std::optional<std::string> after;
    std::optional<std::string> from;
    if (const auto it = t.query.find("after"); it != t.query.end()) after = it->second;
    if (const auto it = t.query.find("from"); it != t.query.end()) from = it->second;
    if (after && from) {
      fail(res, 400, "give after or from, not both");
      return true;
    }
    auto reader = readers.take();
    if (!reader->job(job)) {
      fail(res, 404, "no job named '" + job + "'");
      return true;
    }
    const auto page = reader->topics(job, status, after, from, *limit);
    json list = json::array();
    for (const auto& topic : page.topics) list.push_back(summary_json(topic));
    send_json(
        res, 200,
        json{{"topics", std::move(list)}, {"next", page.next ? json(*page.next) : json(nullptr)}});
    return true;
  }

  bool topic(const std::string& job, const std::string& key, const Target& t,
             httplib::Response& res) {
    if (auto why = api::check_key(key)) {
      fail(res, 400, *why);
      return true;
    }
    const auto wait = int_param(t, "wait", 0, kMaxWaitSeconds, 0, res);
    if (!wait) return true;
    const auto deadline = steady_ms() + *wait * 1000;
    auto version = snapshot.version();
    for (;;) {
      auto row = readers.take()->topic(job, key);
      if (!row) {
        fail(res, 404, "no topic '" + key + "' in job '" + job + "'");
        return true;
      }
      const auto status = store::parse_status(row->status);
      const auto now = steady_ms();
      if (stopping || (status && store::is_terminal(*status)) || now >= deadline) {
        send_json(res, 200, detail_json(*row));
        return true;
      }
      version = snapshot.wait_newer(
          version, std::chrono::milliseconds(std::min<std::int64_t>(deadline - now, 1000)));
    }
  }

  bool errors(const std::string& job, const Target& t, httplib::Response& res) {
    const auto limit = int_param(t, "limit", 1, 1000, 10, res);
    if (!limit) return true;
    json list = json::array();
    for (const auto& e : readers.take()->errors(job, static_cast<int>(*limit))) {
      list.push_back(json{{"key", e.key},
                          {"status", e.status},
                          {"attempts", e.attempts},
                          {"updated_at", e.updated_at},
                          {"error", e.error}});
    }
    send_json(res, 200, json{{"errors", std::move(list)}});
    return true;
  }

  bool workers(httplib::Response& res) {
    const auto s = snapshot.read();
    const auto now = s.steady_ms;  // (the sink's clock, as of the snapshot)
    json list = json::array();
    for (const auto& w : s.workers_seen) {
      list.push_back(json{{"id", w.id},
                          {"slots", w.slots},
                          {"running", w.running},
                          {"last_heard_ms", std::max<std::int64_t>(now - w.last_heard_ms, 0)}});
    }
    send_json(res, 200, json{{"workers", std::move(list)}});
    return true;
  }

  bool server_info(httplib::Response& res) {
    send_json(res, 200,
              json{{"version", options.version},
                   {"read_only", options.read_only},
                   {"auth", !options.token.empty()}});
    return true;
  }

  bool healthz(httplib::Response& res) {
    const auto s = snapshot.read();
    const auto why = health(s, s.steady_ms);
    res.status = why.empty() ? 200 : 503;
    res.set_content(why.empty() ? "ok\n" : why + "\n", "text/plain; charset=utf-8");
    return true;
  }

  bool metrics(httplib::Response& res) {
    res.set_content(render_metrics(snapshot.read()), "text/plain; version=0.0.4; charset=utf-8");
    return true;
  }

  bool asset(const httplib::Request& req, httplib::Response& res) {
    const auto* a = web::find_asset(req.path);
    if (a == nullptr) {
      fail(res, 404, "not found: " + req.path);
      return true;
    }
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_content(std::string(a->body), std::string(a->content_type));
    return true;
  }

  // ---- /v1/events: Server-Sent Events from the published snapshots ---------------------------

  struct Stream {
    std::optional<std::string> job;  // only this job's events
    bool started = false;
    std::uint64_t version = 0;
    std::map<std::string, std::pair<store::StatusCounts, bool>, std::less<>> sent;
    std::map<std::string, std::int64_t, std::less<>> sent_ms;
    std::int64_t sink_sent_ms = 0;
    std::int64_t last_write_ms = 0;
  };

  bool events(const Target& t, httplib::Response& res) {
    if (streams.fetch_add(1) >= kMaxStreams) {
      streams.fetch_sub(1);
      fail(res, 503, "too many live event streams; retry later");
      return true;
    }
    auto stream = std::make_shared<Stream>();
    if (const auto it = t.query.find("job"); it != t.query.end() && !it->second.empty()) {
      stream->job = it->second;
    }
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream](std::size_t /*offset*/, httplib::DataSink& sink) {
          return pump(*stream, sink);
        },
        [this](bool /*success*/) { streams.fetch_sub(1); });
    return true;
  }

  // Writes what changed since the last call (waiting up to a second for something to), true
  // while the stream should go on.
  bool pump(Stream& st, httplib::DataSink& sink) {
    if (stopping) return false;
    std::string out;
    if (!st.started) {
      out += "retry: 2000\n\n";
      st.started = true;
    } else {
      st.version = snapshot.wait_newer(st.version, 250ms);
      if (stopping) return false;
    }
    const auto s = snapshot.read();
    st.version = s.version;
    const auto now = steady_ms();
    for (const auto& [name, counts] : s.counts) {
      if (st.job && *st.job != name) continue;
      const bool paused = s.paused.contains(name);
      const auto it = st.sent.find(name);
      if (it != st.sent.end() && it->second.first == counts && it->second.second == paused) {
        continue;
      }
      if (const auto last = st.sent_ms.find(name);
          last != st.sent_ms.end() && now - last->second < kJobEventMs) {
        continue;  // sent recently: the next pump (within 250 ms) sends the latest counts
      }
      out += "event: job\ndata: " + api::dump(snapshot_job_json(name, counts, paused, s.wall_ms)) +
             "\n\n";
      st.sent[name] = {counts, paused};
      st.sent_ms[name] = now;
    }
    for (auto it = st.sent.begin(); it != st.sent.end();) {
      if (s.counts.contains(it->first)) {
        ++it;
        continue;
      }
      out += "event: deleted\ndata: " + api::dump(json{{"job", it->first}}) + "\n\n";
      st.sent_ms.erase(it->first);
      it = st.sent.erase(it);
    }
    if (now - st.sink_sent_ms >= kSinkEventMs) {
      std::uint64_t slots = 0;
      for (const auto& w : s.workers_seen) slots += w.slots;
      const auto why = health(s, s.steady_ms);
      out += "event: sink\ndata: " +
             api::dump(json{{"time_ms", s.wall_ms},
                            {"workers", s.workers_seen.size()},
                            {"slots", slots},
                            {"in_transit", s.in_transit},
                            {"updates_committed", s.counters.updates},
                            {"batches_committed", s.counters.batches},
                            {"healthy", why.empty()},
                            {"reason", why}}) +
             "\n\n";
      st.sink_sent_ms = now;
    }
    if (out.empty() && now - st.last_write_ms >= kKeepAliveMs) out = ": keep-alive\n\n";
    if (out.empty()) return true;
    st.last_write_ms = now;
    return sink.write(out.data(), out.size());
  }
};

HttpApi::HttpApi(HttpOptions options, std::string db_path, ApiInbox& inbox,
                 const SharedSnapshot& snapshot)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(db_path), inbox, snapshot)) {}
HttpApi::~HttpApi() = default;
int HttpApi::port() const noexcept { return impl_->bound_port; }

}  // namespace topicflow::sink
