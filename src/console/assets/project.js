// The project picker and a project's page: its destinations, each with a health badge and an
// hour's delivered/failed chart, refreshed every few seconds while the page is shown.

import { h, replace, count } from './dom.js';
import { call, path, missingEndpoint } from './api.js';
import { chart, health, badge } from './chart.js';

export const href = {
  project: (p) => '#/p/' + encodeURIComponent(p),
  destination: (p, id) => '#/p/' + encodeURIComponent(p) + '/d/' + encodeURIComponent(id),
  create: (p) => '#/p/' + encodeURIComponent(p) + '/new',
};

export async function projectsPage(page) {
  const { projects } = await call('GET', '/v1/projects');
  const list = projects.length
    ? h('ul', { class: 'projects' }, projects.map((p) => h('li', {}, h('a', { href: href.project(p) }, p))))
    : h('p', {}, 'This token may not see any project yet.');
  const input = h('input', { id: 'open-project', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const open = h('form', { class: 'inline-form', 'aria-label': 'Open a project' },
    h('label', { for: 'open-project' }, 'Open a project by id'), input,
    h('button', { type: 'submit' }, 'Open'));
  open.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim()) location.hash = href.project(input.value.trim());
  });
  page.show(h('h1', { tabindex: '-1' }, 'Projects'), list, open);
}

// Statuses by destination id: the project's aggregated status when courier has it, else each
// destination's own.
async function statuses(project, destinations) {
  const byId = new Map();
  try {
    const all = await call('GET', path('projects', project, 'status'));
    for (const s of (all && all.destinations) || []) byId.set(s.id, s);
  } catch (e) {
    if (!missingEndpoint(e)) throw e;
  }
  await Promise.all(destinations.filter((d) => !byId.has(d.id)).map(async (d) => {
    try {
      byId.set(d.id, await call('GET', path('projects', project, 'destinations', d.id, 'status')));
    } catch {
      // Shown as unknown.
    }
  }));
  return byId;
}

// A destination's card. Its link is made once and never replaced: a refresh redraws the
// badge, counters and chart only, so keyboard focus on the link survives it.
function newCard(project, id) {
  const c = {
    badge: h('span'), meta: h('p', { class: 'meta' }), counts: h('p', { class: 'counts' }), chart: h('div'),
  };
  c.li = h('li', { class: 'card', 'data-destination': id },
    h('div', { class: 'card-head' }, h('h2', {}, h('a', { href: href.destination(project, id) }, id)), c.badge),
    c.meta, c.counts, c.chart);
  return c;
}

function fill(c, d, s) {
  const events = (s && s.events) || {};
  replace(c.badge, badge(health(s, d)));
  c.meta.textContent = `${d.type} · ${d.managed_by === 'api' ? 'created through the API' : 'configuration file'}`;
  c.counts.textContent = `${count(events.delivered)} delivered · ${count(events.failed)} failed · ${count(events.parked)} parked` +
    (events.overflowed ? ` (${count(events.overflowed)} overflowed)` : '');
  replace(c.chart, chart(s));
}

export async function projectPage(page, project) {
  const list = h('ul', { class: 'cards', 'aria-busy': 'true' });
  const empty = h('p', { class: 'empty', hidden: true }, 'No destinations yet.');
  page.show(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Projects')),
    h('div', { class: 'title-row' },
      h('h1', { tabindex: '-1' }, 'Project ', h('span', { class: 'name' }, project)),
      h('a', { class: 'button', href: href.create(project) }, 'New destination')),
    empty, list);
  const cards = new Map();
  const refresh = async () => {
    const { destinations } = await call('GET', path('projects', project, 'destinations'));
    const byId = await statuses(project, destinations);
    if (!page.alive()) return;
    const ids = destinations.map((d) => d.id);
    for (const [id, c] of cards) {
      if (!ids.includes(id)) {
        c.li.remove();
        cards.delete(id);
      }
    }
    for (const d of destinations) {
      if (!cards.has(d.id)) cards.set(d.id, newCard(project, d.id));
      fill(cards.get(d.id), d, byId.get(d.id));
    }
    // Nodes move only when the order changed (moving one drops its focus).
    const order = ids.map((id) => cards.get(id).li);
    if (order.some((li, i) => list.children[i] !== li)) list.append(...order);
    empty.hidden = destinations.length !== 0;
    list.setAttribute('aria-busy', 'false');
  };
  await refresh();
  page.every(5000, refresh);
}
