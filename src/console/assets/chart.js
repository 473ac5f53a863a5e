// An hour of deliveries as an SVG bar chart, one bar per minute (delivered below, failed and
// parked stacked above), built with DOM APIs from the status's `minutes`. A status without
// `minutes` gets an empty chart that says so: nothing is invented.

import { h, s } from './dom.js';

const WIDTH = 600;
const HEIGHT = 100;

function total(minutes, key) {
  return minutes.reduce((sum, m) => sum + (Number(m[key]) || 0), 0);
}

export function chart(status) {
  const minutes = status && Array.isArray(status.minutes) ? status.minutes : null;
  if (!minutes || minutes.length === 0) {
    return h('figure', { class: 'chart chart-empty', 'data-delivered': 0, 'data-failed': 0 },
      h('figcaption', {}, 'Last hour: no per-minute counts from courier yet.'));
  }
  const delivered = total(minutes, 'delivered');
  const failed = total(minutes, 'failed');
  const parked = total(minutes, 'parked');
  const peak = Math.max(1, ...minutes.map((m) =>
    (Number(m.delivered) || 0) + (Number(m.failed) || 0) + (Number(m.parked) || 0)));
  const step = WIDTH / minutes.length;
  const label = `Last hour: ${delivered} delivered, ${failed} failed, ${parked} parked`;
  const svg = s('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': label,
    preserveAspectRatio: 'none', class: 'bars',
  }, s('title', {}, label));
  minutes.forEach((m, i) => {
    let y = HEIGHT;
    for (const key of ['delivered', 'failed', 'parked']) {
      const n = Number(m[key]) || 0;
      if (n === 0) continue;
      const height = Math.max(1, (n / peak) * (HEIGHT - 4));
      y -= height;
      svg.append(s('rect', {
        x: (i * step + 1).toFixed(1), y: y.toFixed(1),
        width: Math.max(1, step - 2).toFixed(1), height: height.toFixed(1), class: 'bar-' + key,
      }, s('title', {}, `${m.minute || ''}: ${n} ${key}`)));
    }
  });
  svg.append(s('line', { x1: 0, y1: HEIGHT - 0.5, x2: WIDTH, y2: HEIGHT - 0.5, class: 'axis' }));
  return h('figure', { class: 'chart', 'data-delivered': delivered, 'data-failed': failed },
    svg,
    h('figcaption', {},
      h('span', { class: 'key key-delivered' }, `${delivered} delivered`), ' · ',
      h('span', { class: 'key key-failed' }, `${failed} failed`), ' · ',
      h('span', { class: 'key key-parked' }, `${parked} parked`), ' in the last hour'));
}

// healthy, slow, failing, paused or disabled, from the definition's `enabled` and the
// status's circuit, last error (an error newer than the last success is failing) and minutes
// (events failed and none delivered in the last 5 minutes is failing too: a destination that
// answers but refuses every batch keeps its circuit closed). Slow: it works, but events
// overflowed its full queue in the last 5 minutes (by the server's clock: the newest minute
// of `minutes`), so some wait for the retry worker.
export function health(status, definition) {
  const enabled = (definition && definition.enabled) ?? (status && status.enabled);
  if (enabled === false) return 'disabled';
  if (!status) return 'unknown';
  if (status.circuit === 'paused') return 'paused';
  if (status.circuit === 'open') return 'failing';
  const err = status.last_error;
  if (err) {
    const errorAt = Date.parse(err.at || '') || 0;
    const okAt = Date.parse(status.last_success_at || '') || 0;
    if (!status.last_success_at || errorAt >= okAt) return 'failing';
  }
  if (Array.isArray(status.minutes) && status.minutes.length) {
    const recent = status.minutes.slice(-5);
    if (total(recent, 'failed') > 0 && total(recent, 'delivered') === 0) return 'failing';
  }
  if (status.running === false) return 'unknown';
  if (overflowedRecently(status)) return 'slow';
  return 'healthy';
}

function overflowedRecently(status) {
  const at = Date.parse(status.last_overflow_at || '');
  if (!at || !Array.isArray(status.minutes) || !status.minutes.length) return false;
  const newest = Date.parse(status.minutes[status.minutes.length - 1].minute) || 0;
  return at >= newest - 4 * 60 * 1000;
}

export function badge(state) {
  return h('span', { class: 'badge badge-' + state, 'data-health': state }, state);
}
