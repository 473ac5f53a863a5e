// The console's entry point: hash routes (so the back button works and every page has an
// address), sign-in with a bearer token kept in session storage, and the page lifecycle
// (a page's timers stop when another page is shown).
//
// Routes: #/ projects · #/signin · #/p/<project> · #/p/<project>/new · #/p/<project>/d/<id>

import { h, replace } from './dom.js';
import { call, token, signIn, signOut, whenUnauthorized } from './api.js';
import { projectsPage, projectPage } from './project.js';
import { destinationPage, newDestinationPage } from './destination.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let current = null;
let signInMessage = '';

// One shown page: `show` fills <main>, `every` repeats a refresh while the page is current.
function newPage() {
  if (current) current.stop();
  const timers = [];
  let alive = true;
  const page = {
    alive: () => alive,
    stop() {
      alive = false;
      timers.forEach(clearInterval);
    },
    show(...children) {
      if (!alive) return;
      replace(main, children);
      const title = main.querySelector('h1');
      if (title) {
        document.title = title.textContent + ' · courier console';
        title.focus();
      }
    },
    every(ms, fn) {
      let busy = false;
      timers.push(setInterval(async () => {
        if (!alive || busy) return;
        busy = true;
        try {
          await fn();
        } catch (e) {
          if (alive) showProblem(e);
        } finally {
          busy = false;
        }
      }, ms));
    },
  };
  current = page;
  return page;
}

function showProblem(e) {
  let box = main.querySelector('.page-error');
  if (!box) {
    box = h('div', { class: 'page-error', role: 'alert' });
    main.prepend(box);
  }
  replace(box, h('p', {}, e.message || String(e)));
}

function renderNav() {
  if (!token()) {
    replace(nav);
    return;
  }
  const out = h('button', { type: 'button', class: 'link' }, 'Sign out');
  out.addEventListener('click', () => {
    signOut();
    signInMessage = 'Signed out.';
    location.hash = '#/signin';
  });
  replace(nav, h('a', { href: '#/' }, 'Projects'), out);
}

function signInPage(page) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true,
    spellcheck: 'false', 'aria-describedby': 'token-hint token-error' });
  const error = h('p', { class: 'field-error', id: 'token-error', role: 'alert' }, signInMessage);
  signInMessage = '';
  const form = h('form', { class: 'signin', 'aria-label': 'Sign in' },
    h('div', { class: 'field' },
      h('label', { for: 'token' }, 'API token'), input,
      h('p', { class: 'hint', id: 'token-hint' },
        'A bearer token of courier\'s [api] tokens. It is kept in this tab only and sent as an Authorization header.'),
      error),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = 'Enter a token.';
      input.focus();
      return;
    }
    signIn(value);
    try {
      await call('GET', '/v1/projects');
      location.hash = '#/';
    } catch (err) {
      signOut();
      error.textContent = err.status === 401 ? 'This token is not valid.' : err.message;
      input.focus();
    }
  });
  page.show(h('h1', { tabindex: '-1' }, 'Sign in'), form);
}

async function route() {
  const page = newPage();
  renderNav();
  const hash = location.hash || '#/';
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (!token() && parts[0] !== 'signin') {
    location.replace('#/signin');
    return;
  }
  try {
    if (parts[0] === 'signin') {
      signInPage(page);
    } else if (parts.length === 0) {
      await projectsPage(page);
    } else if (parts[0] === 'p' && parts.length === 2) {
      await projectPage(page, parts[1]);
    } else if (parts[0] === 'p' && parts.length === 3 && parts[2] === 'new') {
      newDestinationPage(page, parts[1]);
    } else if (parts[0] === 'p' && parts.length === 4 && parts[2] === 'd') {
      await destinationPage(page, parts[1], parts[3]);
    } else {
      page.show(h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'No page here. '), h('a', { href: '#/' }, 'Projects'));
    }
  } catch (e) {
    if (!page.alive()) return;
    page.show(h('h1', { tabindex: '-1' }, 'Cannot show this page'),
      h('p', { class: 'page-error', role: 'alert' }, e.message || String(e)),
      h('p', {}, h('a', { href: '#/' }, 'Back to the projects')));
  }
}

whenUnauthorized(() => {
  signOut();
  if (location.hash !== '#/signin') {
    signInMessage = 'Your token was refused; sign in again.';
    location.hash = '#/signin';
  }
});
window.addEventListener('hashchange', route);
route();
