// The /v1 API (docs/api.md), relative to the page so the dashboard works behind a path prefix.
// Writes carry the bearer token, asked once and kept in sessionStorage for this tab.
import {ask} from './dom.js';

const TOKEN_KEY = 'topicflow.token';
export const enc = encodeURIComponent;

// What the server allows. GET /v1/server ({read_only, auth, version}) when it has it; otherwise
// learnt from answers (403 read-only, 401 token).
export const server = {readOnly: false, auth: false, version: ''};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, {signal, body} = {}) {
  const headers = {Accept: 'application/json'};
  const write = method !== 'GET';
  if (write) {
    headers['Content-Type'] = 'application/json';
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(`v1/${path}`, {method, headers, cache: 'no-store', signal,
                                          credentials: 'same-origin', body});
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `no answer from the sink (${e.message})`);
  }
  let doc = null;
  try { doc = await response.json(); } catch { /* not JSON: keep the status text */ }
  if (!response.ok) {
    throw new ApiError(response.status, (doc && doc.error) || `${response.status} ${response.statusText}`);
  }
  return doc;
}

export async function loadServerInfo() {
  try {
    const info = await api('GET', 'server');
    server.readOnly = !!info.read_only;
    server.auth = !!info.auth;
    server.version = info.version || '';
  } catch {
    await probeWrites();
  }
}

// Without GET /v1/server: an empty submission registers nothing anywhere, and tells a
// read-only sink (403) and one that needs a token (401) from one that takes writes.
async function probeWrites() {
  try {
    await api('POST', 'jobs/topicflow-dashboard-probe/topics', {body: '[]'});
  } catch (e) {
    if (e.status === 403) server.readOnly = true;
    if (e.status === 401) server.auth = true;
  }
}

// A write, asking for the token first when the server needs one, and again after a 401.
export async function write(method, path) {
  if (server.auth && !sessionStorage.getItem(TOKEN_KEY) && !(await askToken())) return null;
  try {
    return await api(method, path);
  } catch (e) {
    if (e.status === 401 && (await askToken('The token was refused. '))) return api(method, path);
    if (e.status === 403 && /read.only/i.test(e.message)) server.readOnly = true;
    throw e;
  }
}

async function askToken(prefix = '') {
  const token = await ask(`${prefix}This sink needs a token for changes (the first line of its ` +
                          '--http-token-file). It is kept for this tab only.',
                          {input: true, ok: 'Use token'});
  if (!token) return false;
  sessionStorage.setItem(TOKEN_KEY, token);
  server.auth = true;
  return true;
}
