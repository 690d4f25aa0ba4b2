// topicflow dashboard: hash routes, the three pages (jobs, a job, a topic), actions, and the
// header (connection, warnings, throughput chart). Plain ES modules, no build step.
//   #/                                   jobs overview
//   #/jobs/NAME?status=failed&after=K    a job's topics (one page; `from=K` jumps to a key)
//   #/jobs/NAME/topics/KEY               one topic
import {api, enc, loadServerInfo, server, write} from './api.js';
import {STATUSES, ask, bar, done, duration, el, flash, fmt, updateBar, when} from './dom.js';
import {CHART_SECONDS, live, rate, start} from './live.js';

const RENDER_MS = 300;       // at most ~3 DOM updates a second, whatever the event rate
const REFRESH_MS = 2000;     // a page's topics are re-read at most this often while counts move
const PAGE_LIMIT = 100;
const PREVIEW_CHARS = 2000;  // payloads and results longer than this show "Show all"
const TERMINAL = ['completed', 'failed', 'cancelled'];

let view = null;             // the current page: {route, root, update(), refresh()}
let dirty = true;
const trails = new Map();    // job + status -> hashes of the pages before this one (Previous)

// --- routes ----------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const cut = hash.indexOf('?');
  const query = new URLSearchParams(cut < 0 ? '' : hash.slice(cut + 1));
  try {
    const parts = (cut < 0 ? hash : hash.slice(0, cut)).split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === 'jobs' && parts.length === 2) return {page: 'job', job: parts[1], query};
    if (parts[0] === 'jobs' && parts[2] === 'topics' && parts.length === 4) {
      return {page: 'topic', job: parts[1], key: parts[3], query};
    }
  } catch { /* a malformed link: show the overview */ }
  return {page: 'jobs', query};
}

function jobHref(job, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  return `#/jobs/${enc(job)}${query ? `?${query}` : ''}`;
}

const topicHref = (job, key) => `#/jobs/${enc(job)}/topics/${enc(key)}`;

function show() {
  const route = parseRoute();
  view = route.page === 'job' ? jobPage(route) : route.page === 'topic' ? topicPage(route) : overview();
  view.route = route;
  document.title = route.job ? `${route.key || route.job} · topicflow` : 'topicflow';
  document.getElementById('view').replaceChildren(view.root);
  view.update();
}

// --- actions ---------------------------------------------------------------------------------

const busy = (job) => job.pending + job.running;
const ACTIONS = [
  {name: 'pause', label: 'Pause', show: (j) => !j.paused && busy(j) > 0,
   confirm: (j) => `Pause “${j.job}”? Running topics finish; pending ones wait until you resume.`,
   done: (r) => `Paused “${r.job}”.`},
  {name: 'resume', label: 'Resume', show: (j) => j.paused,
   confirm: (j) => `Resume “${j.job}”? Its ${fmt(j.pending)} pending topics are dispatched again.`,
   done: (r) => `Resumed “${r.job}”.`},
  {name: 'retry-failed', label: 'Retry failed', show: (j) => j.failed > 0,
   confirm: (j) => `Run the ${fmt(j.failed)} failed topics of “${j.job}” again, with fresh attempts?`,
   done: (r) => `${fmt(r.changed)} failed topics of “${r.job}” are pending again.`},
  {name: 'cancel', label: 'Cancel', danger: true, show: (j) => busy(j) > 0,
   confirm: (j) => `Cancel the ${fmt(busy(j))} pending and running topics of “${j.job}”? ` +
                   'Cancelled topics do not run again.',
   done: (r) => `Cancelled ${fmt(r.changed)} topics of “${r.job}”.`},
  {name: 'delete', label: 'Delete', danger: true, method: 'DELETE', show: (j) => busy(j) === 0,
   confirm: (j) => `Delete “${j.job}” and its ${fmt(j.total)} topics from the database?`,
   done: (r) => `Deleted “${r.job}” (${fmt(r.deleted)} topics).`},
];

function actionBar(jobName) {
  const buttons = ACTIONS.map((action) => el('button', {
    type: 'button', class: action.danger ? 'danger' : '', dataset: {action: action.name},
    onclick: () => runAction(action, live.jobs.get(jobName)),
  }, action.label));
  const node = el('div', {class: 'actions'}, buttons);
  node.update = (job) => buttons.forEach((b, i) => { b.hidden = !job || !ACTIONS[i].show(job); });
  return node;
}

async function runAction(action, job) {
  if (!job || !(await ask(action.confirm(job), {ok: action.label, danger: action.danger}))) return;
  const path = action.method ? `jobs/${enc(job.job)}` : `jobs/${enc(job.job)}/${action.name}`;
  try {
    const answer = await write(action.method || 'POST', path);
    if (!answer) return;
    if (action.name === 'delete') {
      live.jobs.delete(job.job);
      if (view.route.job === job.job) location.hash = '#/';
    } else {
      const {changed: _, ...counts} = answer;
      live.jobs.set(job.job, counts);
    }
    flash(action.done(answer));
    if (view.refresh) view.refresh();
  } catch (e) {
    flash(`${action.label} “${job.job}” failed: ${e.message}`, true);
  }
  dirty = true;
}

// --- the jobs overview -----------------------------------------------------------------------

function rateText(name) {
  const r = rate(name);
  return r === 0 ? '—' : `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}/s`;
}

function etaText(name, job) {
  if (busy(job) === 0) return 'done';
  if (job.paused) return 'paused';
  const r = rate(name);
  return r > 0 ? duration(busy(job) / r) : '—';
}

function badges(job) {
  const out = [];
  if (job.paused) out.push(el('span', {class: 'badge paused'}, 'paused'));
  if (job.cancelled) out.push(el('span', {class: 'badge cancelled'}, 'cancelled'));
  return out;
}

function overview() {
  const rows = new Map();
  const tbody = el('tbody');
  const head = ['Job', 'Progress', 'Done', 'Failed', 'Rate', 'ETA', ''].map(
    (h, i) => el('th', {class: i >= 2 && i <= 5 ? 'num' : ''}, h));
  const table = el('table', {class: 'jobs'}, el('thead', {}, el('tr', {}, head)), tbody);
  const empty = el('p', {class: 'empty'}, 'No jobs yet. Submit topics with topicflow-producer, ',
                   'topicflow run, or POST /v1/jobs/NAME/topics (the Python client: Client.submit).');
  const root = el('section', {}, el('h2', {}, 'Jobs'), table, empty);

  function row(name) {
    const progress = bar();
    const cells = {done: el('td', {class: 'num'}), failed: el('td', {class: 'num'}),
                   rate: el('td', {class: 'num'}), eta: el('td', {class: 'num'})};
    const marks = el('span');
    const actions = actionBar(name);
    const tr = el('tr', {class: 'job', dataset: {job: name}},
                  el('td', {}, el('a', {href: jobHref(name)}, name), marks), el('td', {}, progress),
                  cells.done, cells.failed, cells.rate, cells.eta, el('td', {}, actions));
    const update = (job) => {
      updateBar(progress, job);
      cells.done.textContent = `${fmt(done(job))} / ${fmt(job.total)}`;
      cells.failed.textContent = job.failed ? fmt(job.failed) : '';
      cells.rate.textContent = rateText(name);
      cells.eta.textContent = etaText(name, job);
      marks.replaceChildren(...badges(job));
      actions.update(job);
    };
    return {tr, update};
  }

  function update() {
    const names = [...live.jobs.keys()].sort();
    table.hidden = names.length === 0;
    empty.hidden = names.length > 0;
    for (const [name, r] of rows) {
      if (!live.jobs.has(name)) { r.tr.remove(); rows.delete(name); }
    }
    names.forEach((name, i) => {
      if (!rows.has(name)) rows.set(name, row(name));
      const r = rows.get(name);
      if (tbody.children[i] !== r.tr) tbody.insertBefore(r.tr, tbody.children[i] || null);
      r.update(live.jobs.get(name));
    });
  }
  return {root, update};
}

// --- a job's page ----------------------------------------------------------------------------

function jobPage(route) {
  const name = route.job;
  const status = route.query.get('status') || '';
  const after = route.query.get('after');
  const from = after ? null : route.query.get('from');
  const trailKey = `${name}\n${status}`;
  if (!after && !from) trails.delete(trailKey);
  const progress = bar(true);
  const marks = el('span');
  const summary = el('span', {class: 'muted'});
  const actions = actionBar(name);
  const filterCounts = new Map(['', ...STATUSES].map((s) => [s, el('span', {class: 'count'}, '0')]));
  const legend = el('nav', {class: 'legend', 'aria-label': 'filter by status'},
    [...filterCounts].map(([s, count]) => el('a', {
      href: jobHref(name, {status: s}), 'aria-current': String(s === status), dataset: {filter: s || 'all'},
    }, s ? el('span', {class: `dot ${s}`}) : '', `${s || 'all'} `, count)));
  const jump = el('input', {type: 'search', name: 'from', value: from || '',
                            placeholder: 'Jump to a key…',
                            title: 'Show topics from this key on (or the first one after it)'});
  const form = el('form', {class: 'jump', onsubmit: (e) => {
    e.preventDefault();
    location.hash = jobHref(name, {status, from: jump.value});
  }}, jump, ' ', el('button', {type: 'submit'}, 'Go'));
  const tbody = el('tbody');
  const table = el('table', {class: 'topics'}, el('thead', {}, el('tr', {},
    ['Key', 'Status', 'Attempts', 'Updated', 'Error'].map((h, i) => el('th', {class: i === 2 ? 'num' : ''}, h)))),
  tbody);
  const message = el('p', {class: 'empty', hidden: true});
  const pager = el('div', {class: 'pager'});
  const root = el('section', {},
    el('div', {class: 'crumbs'}, el('a', {href: '#/'}, 'Jobs'), ' › ', name),
    el('h2', {}, name, marks), el('div', {class: 'toolbar'}, summary, actions),
    progress, legend, el('div', {class: 'toolbar'}, form), table, message, pager);
  let fetched = {at: 0, counts: ''};
  let loading = null;

  async function load() {
    if (loading) loading.abort();
    const controller = (loading = new AbortController());
    const params = new URLSearchParams({limit: PAGE_LIMIT});
    if (status) params.set('status', status);
    if (after) params.set('after', after);
    if (from) params.set('from', from);
    const job = live.jobs.get(name);
    fetched = {at: Date.now(), counts: job ? STATUSES.map((s) => job[s]).join() : ''};
    try {
      const page = await api('GET', `jobs/${enc(name)}/topics?${params}`, {signal: controller.signal});
      renderTopics(page);
    } catch (e) {
      if (e.name === 'AbortError') return;
      tbody.replaceChildren();
      message.hidden = false;
      message.textContent = e.status === 404 ? `There is no job “${name}” (it may have been deleted).`
                                             : `Could not read the topics: ${e.message}`;
      pager.replaceChildren();
    }
  }

  function renderTopics(page) {
    performance.mark('topics-rendered');  // the browser tests time a job page with it
    tbody.replaceChildren(...page.topics.map((t) => el('tr', {dataset: {key: t.key, status: t.status}},
      el('td', {class: 'key', title: t.key}, el('a', {href: topicHref(name, t.key)}, t.key)),
      el('td', {}, el('span', {class: `badge ${t.status}`}, t.status)),
      el('td', {class: 'num'}, t.attempts), el('td', {}, when(t.updated_at)),
      el('td', {class: 'error', title: t.error || ''}, t.error || ''))));
    table.hidden = page.topics.length === 0;
    message.hidden = page.topics.length > 0;
    message.textContent = `No ${status || ''} topics${after || from ? ' from here on' : ''}.`.replace('  ', ' ');
    const trail = trails.get(trailKey) || [];
    pager.replaceChildren(
      after || from ? el('a', {href: jobHref(name, {status})}, '« First page') : '',
      trail.length ? el('button', {type: 'button', onclick: () => { location.hash = trail.pop(); }}, '‹ Previous') : '',
      page.next !== null ? el('button', {type: 'button', dataset: {next: page.next}, onclick: () => {
        trails.set(trailKey, [...trail, location.hash || jobHref(name, {status})]);
        location.hash = jobHref(name, {status, after: page.next});
      }}, 'Next ›') : '');
  }

  function update() {
    const job = live.jobs.get(name);
    if (!job) return;
    updateBar(progress, job);
    marks.replaceChildren(...badges(job));
    actions.update(job);
    summary.textContent = `${fmt(done(job))} of ${fmt(job.total)} done · ${rateText(name)} · ETA ${etaText(name, job)}`;
    for (const [s, count] of filterCounts) count.textContent = fmt(s ? job[s] : job.total);
    const counts = STATUSES.map((s) => job[s]).join();
    if (!fetched.counts) fetched.counts = counts;  // first news of the job: the page is fresh
    if (counts !== fetched.counts && Date.now() - fetched.at >= REFRESH_MS) load();
  }

  load();
  return {root, update, refresh: load};
}

// --- a topic's page --------------------------------------------------------------------------

function valueBlock(title, topic, field) {
  const binary = topic[`${field}_base64`];
  const text = binary ?? topic[field];
  const out = [el('h3', {}, title)];
  if (text === null || text === undefined) return [...out, el('p', {class: 'muted'}, 'none')];
  if (binary !== undefined && binary !== null) {
    out.push(el('p', {class: 'note'}, 'Binary (not UTF-8): shown as base64.'));
  }
  const pre = el('pre', {class: 'value', dataset: {field}});
  pre.textContent = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
  out.push(pre);
  if (text.length > PREVIEW_CHARS) {
    const more = el('button', {type: 'button', onclick: () => { pre.textContent = text; more.remove(); }},
                    `Show all (${fmt(text.length)} characters)`);
    out.push(more);
  }
  return out;
}

function topicPage(route) {
  const {job: name, key} = route;
  const body = el('div', {}, el('p', {class: 'muted'}, 'Loading…'));
  const root = el('section', {},
    el('div', {class: 'crumbs'}, el('a', {href: '#/'}, 'Jobs'), ' › ', el('a', {href: jobHref(name)}, name)),
    el('h2', {class: 'key'}, key), body);
  let fetched = {at: 0, counts: '', terminal: false};

  async function load() {
    const job = live.jobs.get(name);
    fetched = {...fetched, at: Date.now(), counts: job ? STATUSES.map((s) => job[s]).join() : ''};
    try {
      const t = await api('GET', `jobs/${enc(name)}/topics/${enc(key)}`);
      fetched.terminal = TERMINAL.includes(t.status);
      const field = (label, value) => [el('dt', {}, label), el('dd', {}, value)];
      body.replaceChildren(
        el('dl', {class: 'fields'},
          field('Status', el('span', {class: `badge ${t.status}`, dataset: {status: t.status}}, t.status)),
          field('Attempts', t.attempts), field('Worker', t.worker || '—'),
          field('Created', when(t.created_at)), field('Updated', when(t.updated_at))),
        ...(t.error ? [el('h3', {}, 'Error'), el('pre', {class: 'value error', dataset: {field: 'error'}}, t.error)] : []),
        ...valueBlock('Payload', t, 'payload'), ...valueBlock('Result', t, 'result'));
    } catch (e) {
      body.replaceChildren(el('p', {class: 'empty'}, e.status === 404
        ? `There is no topic “${key}” in “${name}”.` : `Could not read the topic: ${e.message}`));
    }
  }

  function update() {
    const job = live.jobs.get(name);
    const counts = job ? STATUSES.map((s) => job[s]).join() : '';
    if (!fetched.terminal && counts !== fetched.counts && Date.now() - fetched.at >= REFRESH_MS) load();
  }

  load();
  return {root, update, refresh: load};
}

// --- header: connection, warnings, chart ------------------------------------------------------

const MODES = {live: 'live', reconnecting: 'reconnecting…', polling: 'polling every 2 s',
               offline: 'sink unreachable, retrying', paused: 'paused (tab hidden)', connecting: 'connecting…'};

function renderChrome() {
  const connection = document.getElementById('connection');
  connection.textContent = MODES[live.mode] || live.mode;
  connection.className = `connection ${live.mode}`;
  document.body.classList.toggle('read-only', server.readOnly);
  document.getElementById('mode').hidden = !server.readOnly;
  const warnings = [];
  if (live.mode === 'offline') warnings.push(['error', 'The sink does not answer; retrying.']);
  if (live.sink && live.sink.healthy === false) {
    warnings.push(['error', `The sink is stuck: ${live.sink.reason || 'unhealthy'}`]);
  }
  if (live.sink && live.sink.workers === 0) {
    warnings.push(['', 'No workers connected: pending topics wait until a topicflow-worker connects to this sink.']);
  }
  const banners = document.getElementById('banners');
  const text = warnings.map((w) => w.join(':')).join('\n');
  if (banners.dataset.text !== text) {
    banners.dataset.text = text;
    banners.replaceChildren(...warnings.map(([kind, msg]) => el('div', {class: `banner ${kind}`, role: 'alert'}, msg)));
  }
  drawChart();
}

function drawChart() {
  const canvas = document.getElementById('chart');
  const ctx = canvas.getContext('2d');
  const values = live.chart;
  const peak = Math.max(1, ...values);
  const width = canvas.width / CHART_SECONDS;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#4ade80';
  values.forEach((v, i) => {
    const h = Math.round((v / peak) * (canvas.height - 2));
    const x = canvas.width - (values.length - i) * width;
    ctx.fillRect(x, canvas.height - h, Math.max(1, width), h);
  });
  const now = values.length ? values[values.length - 1] : 0;
  document.getElementById('chart-caption').textContent =
    `${fmt(now)}/s now, peak ${fmt(Math.max(0, ...values))}/s (topics finished, last 5 min)`;
}

// --- start -----------------------------------------------------------------------------------

live.onChange = () => { dirty = true; };
setInterval(() => {
  if (!dirty || document.hidden) return;
  dirty = false;
  renderChrome();
  if (view) view.update();
}, RENDER_MS);
window.addEventListener('hashchange', show);
loadServerInfo().then(() => { dirty = true; });
show();
start();
