// The dashboard's page and script: no framework, nothing fetched from elsewhere (the page's
// Content-Security-Policy allows only its own origin), and every text from distd put in with
// textContent, never as markup.
#include "server/http/dashboard.h"

namespace distd::http {

const char kDashboardHtml[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>distd</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>
  :root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --dim: #6e7781; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #8884; }
  th { font-weight: 600; color: var(--dim); }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  code, pre { font: 12px/1.35 ui-monospace, monospace; }
  pre { white-space: pre-wrap; margin: .3em 0; max-height: 20em; overflow: auto;
        padding: .4em; background: #8881; }
  .state { font-weight: 600; }
  .state-running { color: var(--ok); }
  .state-dying, .state-dead { color: var(--bad); }
  .failure { border-left: 4px solid var(--bad); padding: .2em .8em; margin: .6em 0; }
  .failure h3 { margin: .2em 0; font-size: 1em; color: var(--bad); }
  .empty { color: var(--dim); }
  #connection.down { color: var(--bad); }
</style>
</head>
<body>
<h1>distd</h1>
<div id="pool">connecting&hellip;</div>
<div id="connection"></div>
<h2>Failures</h2>
<div id="failures"><p class="empty">none</p></div>
<h2>Builds</h2>
<table id="builds"><thead><tr><th>build</th><th>state</th><th class="num">queued</th>
<th class="num">running</th><th class="num">succeeded</th><th class="num">failed</th>
<th class="num">cancelled</th></tr></thead><tbody></tbody></table>
<h2>Running</h2>
<table id="running"><thead><tr><th class="num">job</th><th>build</th><th>command</th>
<th class="num">elapsed</th></tr></thead><tbody></tbody></table>
<h2>Closed lately</h2>
<table id="history"><thead><tr><th>build</th><th>closed</th><th class="num">succeeded</th>
<th class="num">failed</th><th class="num">cancelled</th><th>failure</th></tr></thead>
<tbody></tbody></table>
<script src="/dashboard.js"></script>
</body>
</html>
)html";

const char kDashboardScript[] = R"js('use strict';
// Follows /events and draws the state it carries; the elapsed times tick on between events.
let state = null;
let offset = 0;  // the server's clock minus ours

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function shellWord(word) {
  return /^[A-Za-z0-9_@%+=:,.\/-]+$/.test(word) ? word : "'" + word.replace(/'/g, "'\\''") + "'";
}

function command(argv) { return argv.map(shellWord).join(' '); }

function elapsed(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
}

function row(cells) {
  const tr = el('tr');
  for (const [text, cls] of cells) tr.appendChild(el('td', text, cls));
  return tr;
}

function fill(id, rows, empty) {
  const body = document.querySelector('#' + id + ' tbody');
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const td = el('td', empty, 'empty');
    td.colSpan = document.querySelectorAll('#' + id + ' th').length;
    body.appendChild(el('tr')).appendChild(td);
  }
}

function drawRunning() {
  if (!state) return;
  const now = Date.now() + offset;
  fill('running', state.running.map(job => {
    const tr = row([[job.id, 'num'], [job.build], [command(job.argv)],
                    [elapsed(now - job.started_ms), 'num elapsed']]);
    tr.dataset.job = job.id;
    return tr;
  }), 'nothing runs');
}

function draw() {
  const pool = state.pool;
  document.getElementById('pool').textContent =
      pool.running + ' of ' + pool.jobs + ' running, ' + pool.queued + ' queued' +
      (pool.lent > 0 ? ', ' + pool.lent + ' lent to nested builds' : '');
  const failures = state.builds.filter(b => b.failure);
  const box = document.getElementById('failures');
  box.replaceChildren(...failures.map(b => {
    const block = el('div', undefined, 'failure');
    block.dataset.build = b.name;
    block.appendChild(el('h3', 'FAILED: ' + b.name + ': ' + b.failure.reason));
    if (b.failure.argv) block.appendChild(el('code', command(b.failure.argv)));
    if (b.failure.stdout) block.appendChild(el('pre', b.failure.stdout, 'stdout'));
    if (b.failure.stderr) block.appendChild(el('pre', b.failure.stderr, 'stderr'));
    return block;
  }));
  if (failures.length === 0) box.appendChild(el('p', 'none', 'empty'));
  fill('builds', state.builds.map(b => {
    const tr = row([[b.name], [b.state, 'state state-' + b.state], [b.queued, 'num'],
                    [b.running, 'num'], [b.succeeded, 'num'], [b.failed, 'num'],
                    [b.cancelled, 'num']]);
    tr.dataset.build = b.name;
    return tr;
  }), 'no builds');
  fill('history', state.history.map(b => row([
    [b.name], [new Date(b.closed_ms).toLocaleString()], [b.succeeded, 'num'],
    [b.failed, 'num'], [b.cancelled, 'num'], [b.failure || '']])), 'none');
  drawRunning();
}

let retry = 1000;
function connect() {
  const events = new EventSource('/events');
  const status = document.getElementById('connection');
  events.addEventListener('state', message => {
    state = JSON.parse(message.data);
    offset = state.now_ms - Date.now();
    retry = 1000;
    status.textContent = '';
    status.className = '';
    draw();
  });
  events.onerror = () => {
    status.textContent = 'not connected to distd; retrying';
    status.className = 'down';
    // After an answer that is not a stream (distd busy, or restarting) the browser gives up:
    // try again, less and less often.
    if (events.readyState === EventSource.CLOSED) {
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    }
  };
}

setInterval(drawRunning, 1000);
connect();
)js";

const char kDashboardIcon[] = R"svg(<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">
<rect x="1" y="1" width="6" height="6" fill="#1a7f37"/><rect x="9" y="1" width="6" height="6" fill="#1a7f37"/>
<rect x="1" y="9" width="6" height="6" fill="#1a7f37"/><rect x="9" y="9" width="6" height="6" fill="#cf222e"/>
</svg>
)svg";

}  // namespace distd::http
