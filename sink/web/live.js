// Live state: the jobs' counts and the sink's health, from Server-Sent Events (/v1/events),
// falling back to polling /v1/jobs when EventSource fails. Nothing runs while the tab is
// hidden; coming back reconnects, and the server sends the current state at once.
import {api} from './api.js';
import {done} from './dom.js';

const POLL_MS = 2000;           // polling period when SSE is unavailable
const SSE_RETRY_MS = 30000;     // while polling, try SSE again this often
const RATE_WINDOW_MS = 30000;   // a job's rate: finished topics over this window
export const CHART_SECONDS = 300;

export const live = {
  jobs: new Map(),      // name -> JOB (docs/api.md)
  sink: null,           // the last `sink` event: workers, healthy, reason, ...
  mode: 'connecting',   // live | reconnecting | polling | offline | paused
  chart: [],            // topics finished per second, oldest first
  onChange: () => {},   // set by app.js: schedules a (throttled) render
};

const samples = new Map();  // name -> [[ms, done], ...] within RATE_WINDOW_MS
let lastTotal = null;
let source = null;
let fresh = null;           // names seen since (re)connecting; the first `sink` event ends the list
let pollTimer = 0, retryTimer = 0, tickTimer = 0;

export function start() {
  document.addEventListener('visibilitychange', () => (document.hidden ? suspend() : resume()));
  api('GET', 'jobs').then(({jobs}) => {
    if (live.jobs.size === 0) jobs.forEach(put);
    live.onChange();
  }).catch(() => {});
  resume();
}

// Topics per second of one job over the last RATE_WINDOW_MS (0 when unknown).
export function rate(name) {
  const list = samples.get(name);
  if (!list || list.length < 2) return 0;
  const [t0, d0] = list[0];
  const [t1, d1] = list[list.length - 1];
  return t1 > t0 ? Math.max(0, ((d1 - d0) * 1000) / (t1 - t0)) : 0;
}

function resume() {
  lastTotal = null;
  samples.clear();
  clearInterval(tickTimer);
  tickTimer = setInterval(tick, 1000);
  connect();
}

function suspend() {
  clearInterval(tickTimer);
  clearTimeout(retryTimer);
  closeSource();
  stopPolling();
  setMode('paused');
}

function tick() {
  const now = Date.now();
  let total = 0;
  for (const [name, job] of live.jobs) {
    total += done(job);
    const list = samples.get(name) || [];
    list.push([now, done(job)]);
    while (now - list[0][0] > RATE_WINDOW_MS) list.shift();
    samples.set(name, list);
  }
  for (const name of samples.keys()) if (!live.jobs.has(name)) samples.delete(name);
  live.chart.push(lastTotal === null ? 0 : Math.max(0, total - lastTotal));
  if (live.chart.length > CHART_SECONDS) live.chart.shift();
  lastTotal = total;
  live.onChange();
}

function put(job) {
  const {time_ms: _, ...counts} = job;
  live.jobs.set(job.job, counts);
}

function parse(event) {
  try { return JSON.parse(event.data); } catch { return null; }
}

function setMode(mode) {
  live.mode = mode;
  live.onChange();
}

function connect() {
  clearTimeout(retryTimer);
  if (typeof EventSource === 'undefined') return startPolling();
  closeSource();
  const es = (source = new EventSource('v1/events'));
  let opened = false;
  let errors = 0;
  es.onopen = () => {
    opened = true;
    errors = 0;
    fresh = new Set();
    stopPolling();
    setMode('live');
  };
  es.addEventListener('job', (e) => {
    const job = parse(e);
    if (!job || typeof job.job !== 'string') return;
    if (fresh) fresh.add(job.job);
    put(job);
    live.onChange();
  });
  es.addEventListener('sink', (e) => {
    live.sink = parse(e);
    if (fresh) {  // the state sent on connect is complete: forget jobs deleted meanwhile
      for (const name of [...live.jobs.keys()]) if (!fresh.has(name)) live.jobs.delete(name);
      fresh = null;
    }
    live.onChange();
  });
  es.addEventListener('deleted', (e) => {
    const gone = parse(e);
    if (gone) live.jobs.delete(gone.job);
    live.onChange();
  });
  es.onerror = () => {
    errors += 1;
    if (!opened || errors >= 3 || es.readyState === EventSource.CLOSED) {
      closeSource();
      startPolling();
      retryTimer = setTimeout(connect, SSE_RETRY_MS);
    } else {
      setMode('reconnecting');
    }
  };
}

function closeSource() {
  if (source) source.close();
  source = null;
}

function startPolling() {
  if (pollTimer) return;
  setMode('polling');
  poll();
  pollTimer = setInterval(poll, POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = 0;
}

async function poll() {
  try {
    const {jobs} = await api('GET', 'jobs');
    live.jobs = new Map();
    jobs.forEach(put);
    try {
      const {workers} = await api('GET', 'workers');
      live.sink = {...(live.sink || {healthy: true}), workers: workers.length};
    } catch { /* keep the last known */ }
    if (pollTimer) setMode('polling');
  } catch {
    setMode('offline');
  }
  live.onChange();
}
