#include "http_api.hpp"

#include "api_json.hpp"
#include "api_reads.hpp"
#include "event_stream.hpp"
#include "http_access.hpp"
#include "http_request.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/web_assets.hpp>

#include <httplib.h>

#include <algorithm>
#include <atomic>
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
using http::fail;
using http::int_param;
using http::lower;
using http::send_json;
using http::Target;

// Every path, line breaks included ('.' does not match them, and a key may hold one).
const std::string kAnyPath = R"([\s\S]*)";
constexpr int kThreads = 48;       // request threads (live streams hold one each)
constexpr int kMaxStreams = 32;    // concurrent /v1/events clients
constexpr auto kCommitWait = 30s;  // a write not committed by then is answered 503
constexpr std::int64_t kMaxWaitSeconds = 60;

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
    const auto target = http::parse_target(req.target.empty() ? req.path : req.target);
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
    const auto sec_fetch_site = req.get_header_value("Sec-Fetch-Site");
    const auto origin = req.get_header_value("Origin");
    const auto host = req.get_header_value("Host");
    const auto authorization = req.get_header_value("Authorization");
    const auto refusal = http::refuse_write(options.read_only, options.token,
                                            {sec_fetch_site, origin, host, authorization});
    if (!refusal) return true;
    if (refusal->ask_for_token) res.set_header("WWW-Authenticate", "Bearer");
    fail(res, refusal->status, refusal->reason);
    return false;
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

  bool events(const Target& t, httplib::Response& res) {
    if (streams.fetch_add(1) >= kMaxStreams) {
      streams.fetch_sub(1);
      fail(res, 503, "too many live event streams; retry later");
      return true;
    }
    std::optional<std::string> job;
    if (const auto it = t.query.find("job"); it != t.query.end() && !it->second.empty()) {
      job = it->second;
    }
    auto stream = std::make_shared<EventStream>(std::move(job));
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream](std::size_t /*offset*/, httplib::DataSink& sink) {
          return pump(*stream, sink);
        },
        [this](bool /*success*/) { streams.fetch_sub(1); });
    return true;
  }

  // Writes what changed since the last call (waiting up to 250 ms for something to), true
  // while the stream should go on.
  bool pump(EventStream& stream, httplib::DataSink& sink) {
    if (stopping) return false;
    if (stream.started()) {
      (void)snapshot.wait_newer(stream.version(), 250ms);
      if (stopping) return false;
    }
    const auto out = stream.next(snapshot.read(), steady_ms());
    return out.empty() || sink.write(out.data(), out.size());
  }
};

HttpApi::HttpApi(HttpOptions options, std::string db_path, ApiInbox& inbox,
                 const SharedSnapshot& snapshot)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(db_path), inbox, snapshot)) {}
HttpApi::~HttpApi() = default;
int HttpApi::port() const noexcept { return impl_->bound_port; }

}  // namespace topicflow::sink
