// The dashboard in a real browser (headless Chromium through playwright-core): it connects,
// shows a running job with its elapsed time ticking, and shows a failing build's FAILED block,
// with what the job printed, within a second of the failure. Leaves a screenshot behind.
// Usage (run.sh sets these): URL DISTCTL DISTD_ADDR SCREENSHOT CHROMIUM node dashboard_test.mjs
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(process.env.PLAYWRIGHT_FROM);
const { chromium } = require('playwright-core');

const distctl = (...args) => execFileSync(process.env.DISTCTL, args, { encoding: 'utf8' });

function check(ok, what) {
  if (!ok) throw new Error(what);
}

// A build closed before the page opens: the journal's history shows it.
distctl('--build', 'old', 'run', '--', 'true');
distctl('build', 'close', 'old');

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true });
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  page.on('console', message => {
    if (message.type() === 'error') problems.push('console: ' + message.text());
  });
  page.on('pageerror', error => problems.push('page: ' + error.message));
  await page.goto(process.env.URL);
  await page.waitForFunction(
      () => /^0 of 2 running, 0 queued$/.test(document.getElementById('pool').textContent),
      null, { timeout: 10000 });

  const history = await page.textContent('#history tbody');
  check(/^old/.test(history.trim()), 'the closed build is not in the history: ' + history);

  // A running job, whose elapsed time counts on.
  const id = distctl('run', '--bg', '--', 'sleep', '977.6').trim();
  const runningRow = `#running tr[data-job="${id}"]`;
  await page.waitForSelector(runningRow, { timeout: 5000 });
  const first = await page.textContent(`${runningRow} .elapsed`);
  await page.waitForFunction(
      ([selector, before]) => document.querySelector(selector)?.textContent !== before,
      [`${runningRow} .elapsed`, first], { timeout: 5000 });
  check(/sleep 977\.6/.test(await page.textContent(runningRow)), 'the running job is not shown');

  // A failing build: its FAILED block within a second.
  const started = Date.now();
  distctl('--build', 'red', 'run', '--bg', '--', 'sh', '-c',
          'echo compiling x.c; echo "x.c:1: error: <boom>" >&2; exit 3');
  await page.waitForSelector('.failure[data-build="red"]', { timeout: 1000 });
  const after = Date.now() - started;
  const block = await page.textContent('.failure[data-build="red"]');
  check(block.includes('FAILED: red: exit code 3'), 'the block says: ' + block);
  check(block.includes('x.c:1: error: <boom>'), 'the block lacks the stderr: ' + block);
  check(block.includes('compiling x.c'), 'the block lacks the stdout: ' + block);
  // Text from a job is text, never markup.
  check(await page.$('.failure boom') === null, 'a job\'s output became markup');
  const state = await page.textContent('#builds tr[data-build="red"] .state');
  check(state === 'dead', 'the build red is shown ' + state);
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  check(problems.length === 0, 'the page reported: ' + problems.join('; '));
  console.log(`the FAILED block showed ${after} ms after the job was submitted`);
} finally {
  await browser.close();
}
