// Drives courier's web console in Debian's Chromium (headless) the way a customer would.
// Run by tests/console.rs, which starts courier, tansu and a webhook endpoint and passes:
//   CONSOLE_URL        http://127.0.0.1:PORT/console/
//   CONSOLE_TOKEN      a token scoped to proj_a
//   CONTROL_URL        the endpoint's control API (mode, produce, state)
//   HOOK_URL           the endpoint's webhook URL
//   OTHER_PROJECT, OTHER_DESTINATION   a destination the token must not see
//   ARTIFACTS          where screenshots go
// Every wait is bounded; a failed check exits 1 with what was expected and what was seen.

import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const CONSOLE_URL = env('CONSOLE_URL');
const TOKEN = env('CONSOLE_TOKEN');
const CONTROL = env('CONTROL_URL');
const HOOK_URL = env('HOOK_URL');
const OTHER_PROJECT = env('OTHER_PROJECT');
const OTHER_DESTINATION = env('OTHER_DESTINATION');
const ARTIFACTS = env('ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });

const started = Date.now();
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

async function control(method, path) {
  const r = await fetch(CONTROL + path, { method });
  if (!r.ok) throw new Error(`control ${path}: ${r.status}`);
  return r.status === 204 ? null : r.json();
}

// Polls `fn` until it returns a truthy value.
async function until(what, fn, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
});
const problems = [];
let step = 0;
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  page = await context.newPage();
  // Generous: a loaded CI machine is slow, and every wait ends as soon as its condition holds.
  page.setDefaultTimeout(30000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console error: ' + m.text());
  });
  // Anything the page asks of another host would show here; the policy forbids it anyway.
  page.on('request', (r) => {
    if (!r.url().startsWith(new URL(CONSOLE_URL).origin)) problems.push('request to another host: ' + r.url());
  });

  const shot = async (name) => {
    step += 1;
    await page.screenshot({ path: join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  };
  // axe-core, injected through CDP evaluation (not subject to the page's CSP): no serious
  // or critical violation on any page.
  const axe = async (name) => {
    await page.evaluate(AXE_SOURCE);
    const violations = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
    });
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    check(bad.length === 0, `accessibility (${name}): ${JSON.stringify(bad, null, 1)}`);
    log(`axe ${name}: ${violations.length} minor violations, none serious`);
  };
  const xssRan = () => page.evaluate(() => window.__xss !== undefined);

  // 1. Sign in, by keyboard.
  const first = await page.goto(CONSOLE_URL);
  const headers = first.headers();
  check(/default-src 'none'/.test(headers['content-security-policy'] || '') && /script-src 'self'/.test(headers['content-security-policy']),
    `the page has its Content-Security-Policy: ${headers['content-security-policy']}`);
  check(headers['x-content-type-options'] === 'nosniff' && headers['referrer-policy'] === 'no-referrer', 'nosniff and no-referrer');
  await page.waitForURL(/#\/signin$/);
  await page.getByLabel('API token').waitFor();
  await axe('sign-in');
  await shot('sign-in');
  await page.getByLabel('API token').fill('not-a-token-of-this-courier');
  await page.keyboard.press('Enter');
  await page.getByText('This token is not valid.').waitFor();
  await page.getByLabel('API token').fill(TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
  check(await page.evaluate(() => document.cookie === ''), 'no cookie is set');
  check(await page.evaluate(() => Object.keys(sessionStorage).length === 1), 'the token is in session storage');
  const projects = await page.locator('ul.projects li').allTextContents();
  check(JSON.stringify(projects) === JSON.stringify(['proj_a']), `the scoped token sees only proj_a, saw ${JSON.stringify(projects)}`);
  await axe('projects');
  await shot('projects');
  log('signed in; projects:', projects);

  // 2. A new webhook destination: a mistake shown at its field, then fixed.
  await page.getByRole('link', { name: 'proj_a' }).click();
  await page.getByText('No destinations yet.').waitFor();
  await page.getByRole('link', { name: 'New destination' }).click();
  await page.getByRole('heading', { name: 'New destination' }).waitFor();
  // Every type has its form.
  for (const [type, field] of [['datadog', '#f-api_key'], ['splunk_hec', '#f-token'], ['otlp', '#f-logs_path'],
    ['email', '#f-to'], ['s3', '#f-bucket'], ['webhook', '#f-preset']]) {
    await page.locator('#f-type').selectOption(type);
    await page.locator(field).waitFor();
  }
  check(JSON.stringify(await page.locator('#f-preset option').allTextContents()) ===
    JSON.stringify(['(default)', 'slack', 'teams', 'newrelic', 'pagerduty']), 'the webhook presets are offered');
  await page.getByLabel('Destination id').fill('hooks');
  await page.locator('#f-url').fill('ftp://' + new URL(HOOK_URL).host + '/hook');
  await page.getByText('Delivery', { exact: true }).click();
  await page.locator('#f-delivery-batch_timeout').fill('soon');
  // A failed batch is parked once, tried again a second later, then reported as failed.
  await page.locator('#f-delivery-retry_max_elapsed').fill('0s');
  await page.locator('#f-delivery-retry_schedule').fill('1s');
  // One request of at most 5 events at a time, a queue of 20: step 6b makes it too slow.
  await page.locator('#f-delivery-max_in_flight').fill('1');
  await page.locator('#f-delivery-batch_max_events').fill('5');
  await page.locator('#f-delivery-queue_max_events').fill('20');
  await axe('new destination');
  await page.getByRole('button', { name: 'Create destination' }).click();
  const urlError = page.locator('#err-f-url');
  await urlError.waitFor({ state: 'visible' });
  const urlErrorText = await urlError.textContent();
  check(/http/.test(urlErrorText), `the URL's error names the scheme: ${urlErrorText}`);
  check(await page.locator('#f-url').getAttribute('aria-invalid') === 'true', 'the URL field is marked invalid');
  check(await page.evaluate(() => document.activeElement && document.activeElement.id) === 'f-url', 'focus moves to the field in error');
  const timeoutError = await page.locator('#err-f-delivery-batch_timeout').textContent();
  check(timeoutError.length > 0, 'the nested /delivery/batch_timeout error is at its field');
  await shot('field-error');
  log('422 at the url field:', urlErrorText, '— and at delivery.batch_timeout:', timeoutError);
  await page.locator('#f-url').fill(HOOK_URL);
  await page.locator('#f-delivery-batch_timeout').fill('100ms');
  await page.getByRole('button', { name: 'Create destination' }).click();
  await page.waitForURL(/#\/p\/proj_a\/d\/hooks$/);
  await page.getByRole('heading', { name: 'hooks' }).waitFor();
  log('destination created');

  // 3. Pause and enable.
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.locator('.status [data-health="disabled"]').waitFor();
  await page.getByRole('button', { name: 'Enable' }).click();
  await page.getByRole('button', { name: 'Pause' }).waitFor();
  // 'unknown' is the moment between the enable and this replica's reload: an event produced
  // then is routed without the destination.
  await until('the destination runs again', async () => !['disabled', 'unknown'].includes(await page.locator('.status .badge').getAttribute('data-health')));
  check(await page.locator('.status figure.chart').getAttribute('data-delivered') === '0', 'nothing charted before any event');
  await axe('destination');
  await shot('destination');

  // 4. Events arrive; the project's page shows them.
  const ok = await control('POST', '/produce?count=10');
  await until('the endpoint accepted the first 10 events', async () => {
    const s = await control('GET', '/state');
    return ok.every((id) => s.accepted.includes(id));
  });
  await page.getByRole('link', { name: 'proj_a' }).click();
  const card = page.locator('li.card[data-destination="hooks"]');
  await until('the project page counts 10 delivered', async () => /\b10 delivered/.test(await card.locator('.counts').textContent()), 30000);
  const chart = card.locator('figure.chart');
  await until('the chart counts the 10 deliveries', async () => Number(await chart.getAttribute('data-delivered')) === 10, 30000);
  check(await chart.locator('rect.bar-delivered').count() > 0, 'the chart draws delivered bars');
  check(await card.locator('[data-health]').getAttribute('data-health') === 'healthy', 'the badge is healthy');
  await axe('project');
  await shot('project-delivered');
  log('10 events delivered and shown');

  // 5. The endpoint fails (500) with an HTML answer: the badge turns to failing, the answer is text.
  await control('POST', '/mode?failing=true');
  const failed = await control('POST', '/produce?count=5');
  await until('the endpoint refused the 5 events', async () => {
    const s = await control('GET', '/state');
    return failed.every((id) => s.refused.includes(id));
  });
  await until('the badge turns to failing', async () => (await card.locator('[data-health]').getAttribute('data-health')) === 'failing', 30000);
  await until('the 5 events are reported failed', async () => /\b5 failed/.test(await card.locator('.counts').textContent()), 30000);
  await shot('project-failing');
  // By keyboard: Tab to the destination's link (a visible focus ring), Enter.
  await page.locator('h1').focus();
  await until('Tab reaches the destination link', async () => {
    await page.keyboard.press('Tab');
    return page.evaluate(() => document.activeElement.textContent === 'hooks' && document.activeElement.tagName === 'A');
  }, 10000);
  check(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none'), 'the focused link shows a focus ring');
  // The page refreshes itself (a new chart node) without taking the focus away.
  await page.evaluate(() => { document.querySelector('li.card[data-destination="hooks"] figure').dataset.seen = 'yes'; });
  await until('the project page refreshes', () => page.evaluate(() =>
    !document.querySelector('li.card[data-destination="hooks"] figure').dataset.seen), 30000);
  check(await page.evaluate(() => document.activeElement.textContent === 'hooks'), 'the focus stays on the link across a refresh');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'hooks' }).waitFor();
  await until('the last error shows the answer as text', async () =>
    (await page.locator('.status pre.answer').first().textContent()).includes('<img src=x onerror='), 30000);
  const failures = page.locator('table.failures');
  await until('the failures list shows the answer as text', async () =>
    (await failures.locator('pre.answer').first().textContent()).includes('<img src=x onerror='), 30000);
  const ids = await failures.locator('ul.ids li').allTextContents();
  check(failed.every((id) => ids.includes(id)), `the failures list the refused event ids: ${JSON.stringify(ids)}`);
  check(await failures.locator('img').count() === 0, 'no <img> element in the failures list');
  // The test event: its classified answer and latency, the answer again as text.
  await page.getByRole('button', { name: 'Send a test event' }).click();
  const result = page.locator('.test-result');
  await until('the test result', async () => /Outcome: retry/.test(await result.textContent()));
  const resultText = await result.textContent();
  check(/in \d+ ms/.test(resultText) && /HTTP status500/.test(resultText), `the test shows status and latency: ${resultText}`);
  check((await result.locator('pre.answer').textContent()).includes('<img src=x onerror='), 'the test shows the answer as text');
  check(await page.locator('main img').count() === 0, 'no <img> element anywhere on the page');
  check(!(await xssRan()), 'the endpoint\'s markup ran no script');
  await axe('destination failing');
  await shot('destination-failing');
  log('failing shown; the answer stayed text');

  // 6. The endpoint recovers; replay the failures since ten minutes ago.
  await control('POST', '/mode?failing=false');
  const since = new Date(Date.now() - 10 * 60 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  await page.getByLabel('Replay failures since').fill(
    `${since.getFullYear()}-${pad(since.getMonth() + 1)}-${pad(since.getDate())}T${pad(since.getHours())}:${pad(since.getMinutes())}`);
  await page.getByRole('button', { name: 'Replay failures' }).click();
  const job = page.locator('.job');
  await job.waitFor({ state: 'visible' });
  await until('the replay job ends', async () => (await job.getAttribute('data-state')) !== 'running', 60000);
  check(await job.getAttribute('data-state') === 'completed', `the job completed: ${await job.textContent()}`);
  const bar = page.locator('#replay-progress');
  const [value, max] = [await bar.evaluate((b) => b.value), await bar.evaluate((b) => b.max)];
  check(value === max && max > 0, `the progress bar is full: ${value}/${max}`);
  const jobText = await job.textContent();
  check(/5 found, 5 delivered, 0 failed again/.test(jobText), `the job's counts: ${jobText}`);
  await shot('replay-done');
  const s = await control('GET', '/state');
  for (const id of failed) {
    const n = s.accepted.filter((a) => a === id).length;
    check(n === 1, `replayed event ${id} accepted once, was ${n} times`);
  }
  log('replay done:', jobText);

  // 6b. The endpoint answers, but after 300 ms: 5 events per 300 ms cannot keep up with a
  // burst that shares the partition with another project's events. The overflow is parked and
  // the badge says slow, with what to do; the retry worker then delivers every event. First a
  // few events through the lane: until its last request succeeds, it counts as failing (its
  // last lane request was step 5's), and a full queue would park its events as a failing
  // destination's.
  const warm = await control('POST', '/produce?count=3');
  await until('the endpoint accepted 3 more events', async () => {
    const s = await control('GET', '/state');
    return warm.every((id) => s.accepted.includes(id));
  });
  await control('POST', '/mode?delay_ms=300');
  const neighbours = await control('POST', '/produce?count=10&project=' + OTHER_PROJECT);
  const burst = await control('POST', '/produce?count=150');
  await until('the badge turns to slow', async () => (await page.locator('.status .badge').getAttribute('data-health')) === 'slow', 60000);
  const hint = await page.locator('.slow-hint').textContent();
  check(/cannot keep up/.test(hint) && /concurrent requests/.test(hint), `the slow badge says what happened and what to do: ${hint}`);
  const facts = await page.locator('.status dl.facts').textContent();
  check(/Of those, overflowed\s*[1-9]/.test(facts) && /Last overflow/.test(facts), `the page counts the overflow: ${facts}`);
  await axe('destination slow');
  await shot('destination-slow');
  await control('POST', '/mode?delay_ms=0');
  await until('every event of the burst and of the other project arrived', async () => {
    const s = await control('GET', '/state');
    return [...burst, ...neighbours].every((id) => s.accepted.includes(id));
  }, 90000);
  await page.getByRole('link', { name: 'proj_a' }).click();
  await until('the project page counts the overflow', async () => /overflowed\)/.test(await card.locator('.counts').textContent()), 30000);
  check(await card.locator('[data-health]').getAttribute('data-health') === 'slow', 'the card is slow too');
  await shot('project-slow');
  log('slow shown; the overflow was delivered:', await card.locator('.counts').textContent());

  // 7. Another project's destinations: not listed, and a direct address is refused.
  await page.goto(CONSOLE_URL + '#/p/' + OTHER_PROJECT);
  await page.getByRole('heading', { name: 'Cannot show this page' }).waitFor();
  check(/may not act on project/.test(await page.locator('.page-error').textContent()), 'the project page says the token may not');
  await page.goto(CONSOLE_URL + '#/p/' + OTHER_PROJECT + '/d/' + OTHER_DESTINATION);
  await page.getByRole('heading', { name: 'Cannot show this page' }).waitFor();
  check(!(await page.locator('main').textContent()).includes(HOOK_URL), 'nothing of the other destination is shown');
  await axe('refused');
  await shot('other-project-refused');
  // The back button goes back through the pages.
  await page.goBack();
  await page.waitForURL(new RegExp('#/p/' + OTHER_PROJECT + '$'));
  await page.getByRole('heading', { name: 'Cannot show this page' }).waitFor();

  // 8. On a phone.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(CONSOLE_URL + '#/p/proj_a/d/hooks');
  await page.getByRole('heading', { name: 'hooks' }).waitFor();
  check(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling on a phone');
  await shot('phone-destination');
  await page.goto(CONSOLE_URL + '#/p/proj_a');
  await card.waitFor();
  await shot('phone-project');

  // 9. Sign out: the token leaves session storage.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  check(await page.evaluate(() => sessionStorage.length === 0), 'signing out forgets the token');

  check(!(await xssRan()), 'no script from an endpoint ran');
  check(problems.length === 0, 'the page reported no errors: ' + JSON.stringify(problems));
  log('all checks passed');
} catch (e) {
  console.error(e.stack || String(e));
  if (problems.length) console.error('page problems:', problems);
  if (page) {
    try {
      console.error('at', page.url(), 'the page reads:\n' + (await page.locator('body').innerText()).slice(0, 3000));
      await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true });
    } catch (e2) {
      console.error('no screenshot of the failure:', e2.message);
    }
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
