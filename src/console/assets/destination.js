// A destination's page: health and counters, recent failures with the destination's own
// answer (as text), send a test event, pause or enable, replay failures since a time with a
// live progress bar, and the settings form. Also the page that creates a destination.

import { h, replace, when, count } from './dom.js';
import { call, path, ApiError, missingEndpoint } from './api.js';
import { chart, health, badge } from './chart.js';
import { destinationForm, showApiError } from './form.js';
import { href } from './project.js';

function crumbs(project) {
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('a', { href: '#/' }, 'Projects'), ' / ', h('a', { href: href.project(project) }, project));
}

export function newDestinationPage(page, project) {
  page.show(crumbs(project),
    h('h1', { tabindex: '-1' }, 'New destination'),
    destinationForm(project, null, (view) => { location.hash = href.destination(project, view.id); }));
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function statusPanel(definition, s) {
  const events = (s && s.events) || {};
  const err = s && s.last_error;
  const state = health(s, definition);
  return [
    h('div', { class: 'title-row' }, h('h2', {}, 'Health'), badge(state)),
    state === 'slow' ? h('p', { class: 'hint slow-hint' },
      'It answers, but cannot keep up: its queue was full while other destinations\' events shared ' +
      'the partition, so events were parked without an attempt. They are delivered from the first ' +
      'retry step on, later than the rest. Allow more concurrent requests or larger batches below, ' +
      'or make the endpoint answer faster.') : null,
    dl([
      ['Circuit', (s && s.circuit) || '—'],
      s && typeof s.replicas === 'number' ? ['Replicas running it', String(s.replicas)] : null,
      ['Delivered', count(events.delivered)], ['Failed', count(events.failed)],
      ['Parked', count(events.parked)],
      events.overflowed ? ['Of those, overflowed', count(events.overflowed)] : null,
      s && s.last_overflow_at ? ['Last overflow', when(s.last_overflow_at)] : null,
      ['Last success', when(s && s.last_success_at)],
      ['Last error', err ? `${err.kind}${err.http_status ? ' ' + err.http_status : ''} at ${when(err.at)}` : '—'],
    ]),
    err ? h('pre', { class: 'answer' }, err.message) : null,
    chart(s),
  ];
}

function failuresTable(failures) {
  if (failures.length === 0) return h('p', {}, 'No recent failures.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'failures' },
    h('caption', { class: 'visually-hidden' }, 'Recent delivery failures, newest first'),
    h('thead', {}, h('tr', {}, ['When', 'Kind', 'HTTP', 'Events', 'The destination answered'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, failures.map((f) => h('tr', {},
      h('td', { 'data-label': 'When' }, when(f.at)), h('td', { 'data-label': 'Kind' }, f.kind || '—'),
      h('td', { 'data-label': 'HTTP' }, f.http_status ? String(f.http_status) : '—'),
      h('td', { 'data-label': 'Events' }, count(f.events),
        Array.isArray(f.event_ids) && f.event_ids.length
          ? h('details', {}, h('summary', {}, 'ids'), h('ul', { class: 'ids' }, f.event_ids.map((id) => h('li', {}, id))))
          : null),
      h('td', { 'data-label': 'The destination answered' }, h('pre', { class: 'answer' }, f.message || '')))))));
}

function testSection(project, id) {
  const result = h('div', { class: 'test-result', role: 'status' });
  const button = h('button', { type: 'button' }, 'Send a test event');
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(result, 'Sending…');
    try {
      const r = await call('POST', path('projects', project, 'destinations', id, 'test'));
      replace(result,
        h('p', {}, 'Outcome: ', h('strong', { class: 'outcome-' + r.outcome }, r.outcome),
          r.scope ? ` (${r.scope})` : '', ` in ${r.latency_ms} ms`),
        dl([
          r.error_kind ? ['Error', r.error_kind] : null,
          r.http_status ? ['HTTP status', String(r.http_status)] : null,
          r.retry_after_ms ? ['Retry-After', `${r.retry_after_ms} ms`] : null,
          ['Event id', r.event_id],
        ]),
        r.message ? h('pre', { class: 'answer' }, r.message) : null,
        r.body ? [h('p', {}, 'Body sent:'), h('pre', { class: 'answer' }, r.body)] : null);
    } catch (e) {
      replace(result, h('p', { class: 'error' }, e.message));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'test-h' }, h('h2', { id: 'test-h' }, 'Test'), button, result);
}

// datetime-local text for a Date, in local time.
function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function replaySection(page, project, id) {
  const input = h('input', { id: 'replay-from', type: 'datetime-local', 'aria-describedby': 'err-replay-from', required: true });
  input.value = localInput(new Date(Date.now() - 3600 * 1000));
  const fieldError = h('p', { class: 'field-error', id: 'err-replay-from', hidden: true });
  const general = h('div', { class: 'form-errors', role: 'alert', tabindex: '-1', hidden: true });
  const bar = h('progress', { id: 'replay-progress', max: 1, 'aria-labelledby': 'replay-progress-label' });
  const barLabel = h('span', { id: 'replay-progress-label' }, 'Replay progress');
  const text = h('p', { class: 'job-text', role: 'status' });
  const job = h('div', { class: 'job', hidden: true }, barLabel, bar, text);
  const submit = h('button', { type: 'submit' }, 'Replay failures');
  const form = h('form', { class: 'inline-form', novalidate: true, 'aria-label': 'Replay failures' },
    general,
    h('div', { class: 'field' }, h('label', { for: 'replay-from' }, 'Replay failures since'), input, fieldError),
    submit);
  const show = (j) => {
    const p = j.progress || {};
    if (p.total > 0) { bar.max = p.total; bar.value = Math.min(p.read, p.total); } else if (j.state !== 'running') { bar.max = 1; bar.value = 1; } else { bar.removeAttribute('value'); }
    job.setAttribute('data-state', j.state);
    job.setAttribute('data-phase', j.phase || '');
    const ev = j.events;
    replace(text, `Job ${j.id}: ${j.state}, ${j.phase || ''}`,
      p.total ? ` — ${count(p.read)} of ${count(p.total)} messages read` : '',
      ev ? ` — ${count(ev.routed)} found, ${count(ev.delivered)} delivered, ${count(ev.failed)} failed again` : '',
      j.error ? ` — ${j.error}` : '');
  };
  // Polls a job every half second until it ends (or the page is left).
  const follow = async (first) => {
    let j = first;
    job.hidden = false;
    show(j);
    while (j.state === 'running' && page.alive()) {
      await new Promise((r) => setTimeout(r, 500));
      j = await call('GET', path('jobs', j.id));
      show(j);
    }
  };
  // A replay of this destination already running (started earlier, or by someone else) is
  // followed as well.
  call('GET', path('projects', project, 'jobs')).then((answer) => {
    const running = ((answer && answer.jobs) || []).find((j) => j.destination === id && j.state === 'running');
    if (running && job.hidden) return follow(running);
    return null;
  }).catch(() => {});
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fieldError.hidden = true;
    input.removeAttribute('aria-invalid');
    general.hidden = true;
    const from = new Date(input.value);
    const controls = [{ f: { path: ['from'] }, input, wrapper: form.querySelector('.field') }];
    if (!input.value || Number.isNaN(from.getTime())) {
      showApiError(new ApiError(422, 'validation_failed', 'the replay request is not valid',
        [{ pointer: '/from', message: 'give a date and time' }]), controls, general);
      return;
    }
    submit.disabled = true;
    try {
      await follow(await call('POST', path('projects', project, 'destinations', id, 'replay-failures'), { from: from.toISOString() }));
    } catch (err) {
      if (err instanceof ApiError && err.details.length) showApiError(err, controls, general);
      else { replace(general, h('p', {}, err.message)); general.hidden = false; }
    } finally {
      submit.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'replay-h' }, h('h2', { id: 'replay-h' }, 'Replay'), form, job);
}

export async function destinationPage(page, project, id) {
  const definition = await call('GET', path('projects', project, 'destinations', id));
  const statusArea = h('section', { class: 'status', 'aria-label': 'Health' });
  const failuresArea = h('div');
  const toggle = h('button', { type: 'button' });
  const toggleStatus = h('span', { role: 'status', class: 'toggle-status' });
  const setToggle = () => { toggle.textContent = definition.enabled === false ? 'Enable' : 'Pause'; };
  setToggle();
  toggle.addEventListener('click', async () => {
    toggle.disabled = true;
    try {
      const view = await call('POST', path('projects', project, 'destinations', id, definition.enabled === false ? 'enable' : 'pause'));
      definition.enabled = view.enabled;
      setToggle();
      toggleStatus.textContent = view.enabled === false ? 'Paused.' : 'Enabled.';
      await refresh();
    } catch (e) {
      toggleStatus.textContent = e.message;
    } finally {
      toggle.disabled = false;
    }
  });
  const editable = definition.managed_by === 'api';
  page.show(crumbs(project),
    h('div', { class: 'title-row' },
      h('h1', { tabindex: '-1' }, h('span', { class: 'name' }, id)),
      h('span', { class: 'meta' }, definition.type),
      editable ? [toggle, toggleStatus] : null),
    statusArea,
    h('section', { 'aria-labelledby': 'failures-h' }, h('h2', { id: 'failures-h' }, 'Recent failures'), failuresArea),
    testSection(project, id),
    editable ? replaySection(page, project, id) : null,
    h('section', { 'aria-labelledby': 'settings-h' }, h('h2', { id: 'settings-h' }, 'Settings'),
      destinationForm(project, definition, (view) => { Object.assign(definition, view); refresh(); })));

  async function refresh() {
    let s = null;
    try {
      s = await call('GET', path('projects', project, 'destinations', id, 'status'));
    } catch (e) {
      if (e.status === 401) return;
    }
    let failures = null;
    let failuresNote = null;
    try {
      const answer = await call('GET', path('projects', project, 'failures') + '?destination=' + encodeURIComponent(id) + '&limit=50');
      failures = (answer && answer.failures) || [];
    } catch (e) {
      failuresNote = missingEndpoint(e) ? 'This courier does not list failures.' : e.message;
    }
    if (!page.alive()) return;
    // Only what changed is drawn again (an opened list of ids stays open).
    const statusKey = JSON.stringify([s, definition.enabled]);
    if (statusKey !== shownStatus) {
      shownStatus = statusKey;
      replace(statusArea, statusPanel(definition, s));
    }
    const failuresKey = JSON.stringify([failures, failuresNote]);
    if (failuresKey !== shownFailures) {
      shownFailures = failuresKey;
      replace(failuresArea, failures ? failuresTable(failures) : h('p', {}, failuresNote));
    }
  }
  let shownStatus = null;
  let shownFailures = null;
  await refresh();
  page.every(3000, refresh);
}
