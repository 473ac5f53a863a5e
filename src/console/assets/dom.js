// Building the page without an HTML parser: every node is made with createElement and every
// value a customer or an endpoint wrote becomes a text node. Nothing here accepts markup.

// A namespace name, not an address anything is fetched from.
const SVG_NS = 'http://www.w3.org/2000/svg';

// h('p', {class: 'x', onclick: fn}, 'text', child, [more, children]) → an element.
// Attributes are set with setAttribute (never a property that parses HTML); `on…` keys add
// listeners; strings and numbers become text nodes; null, undefined and false are skipped.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// The same for SVG elements.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Replaces every child of `el`.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A time for people: local date and time, or an em dash.
export function when(value) {
  if (!value) return '—';
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? String(value) : t.toLocaleString();
}

// A count: 1,234.
export function count(n) {
  return typeof n === 'number' ? n.toLocaleString() : '—';
}
