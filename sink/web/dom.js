// DOM helpers. Every value from the server reaches the page through el() (text nodes and DOM
// properties), never through innerHTML: a payload like <script>...</script> stays text.

export const STATUSES = ['completed', 'failed', 'cancelled', 'running', 'pending'];

// el('a', {href: '#/', class: 'x', onclick: f}, 'text', child, ...) -> Element
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));  // append(string) = text node
  }
  return node;
}

export const fmt = (n) => Number(n || 0).toLocaleString('en-US');

export function duration(seconds) {
  if (!isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  const h = Math.floor(seconds / 3600);
  return h < 48 ? `${h} h ${Math.round((seconds % 3600) / 60)} min` : `${Math.round(h / 24)} days`;
}

export function when(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export const done = (job) => job.completed + job.failed + job.cancelled;

// A progress bar of segments per status (completed, failed, cancelled, running, pending).
export function bar(big = false) {
  const node = el('div', {class: big ? 'bar big' : 'bar', role: 'img'});
  for (const s of STATUSES) node.append(el('span', {class: `seg ${s}`, dataset: {status: s}}));
  return node;
}

export function updateBar(node, job) {
  const total = job.total || 1;
  for (const seg of node.children) {
    seg.style.width = `${(100 * (job[seg.dataset.status] || 0)) / total}%`;
  }
  const label = STATUSES.map((s) => `${fmt(job[s])} ${s}`).join(', ');
  node.title = label;
  node.setAttribute('aria-label', label);
  node.dataset.done = done(job);
  node.dataset.total = job.total;
}

// A modal question: resolves to true (OK), the typed text (with input), or null (cancelled).
export function ask(text, {input = false, ok = 'OK', danger = false} = {}) {
  const dialog = document.getElementById('dialog');
  const field = document.getElementById('dialog-input');
  const button = document.getElementById('dialog-ok');
  document.getElementById('dialog-text').textContent = text;
  button.textContent = ok;
  button.className = danger ? 'danger' : 'primary';
  field.hidden = !input;
  field.value = '';
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (dialog.returnValue !== 'ok') resolve(null);
      else resolve(input ? field.value.trim() || null : true);
    }, {once: true});
    dialog.showModal();
    (input ? field : button).focus();
  });
}

let flashTimer = 0;
export function flash(text, isError = false) {
  const node = document.getElementById('flash');
  node.textContent = text;
  node.className = isError ? 'error' : '';
  node.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { node.hidden = true; }, isError ? 10000 : 5000);
}
