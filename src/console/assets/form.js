// A destination's settings form, for every type (fields.js), creating or replacing it with
// PUT. The API validates; its 422 answer's details carry JSON pointers, each shown next to the
// field it names (the longest field path that prefixes the pointer), the rest above the form.

import { h, replace } from './dom.js';
import { call, path, ApiError } from './api.js';
import { TYPES, TYPE_FIELDS, COMMON_SECTIONS, OTLP_VENDORS } from './fields.js';

const ID_FIELD = { path: ['id'], kind: 'text', label: 'Destination id', required: true,
  hint: 'Letters, digits, ".", "_" or "-"; it cannot be changed later.' };
const TYPE_FIELD = { path: ['type'], kind: 'select', label: 'Type', options: TYPES, required: true };

function get(obj, p) {
  return p.reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
}

function set(obj, p, value) {
  let o = obj;
  for (const k of p.slice(0, -1)) {
    if (!o[k] || typeof o[k] !== 'object' || Array.isArray(o[k])) o[k] = {};
    o = o[k];
  }
  o[p[p.length - 1]] = value;
}

function remove(obj, p) {
  const parent = get(obj, p.slice(0, -1));
  if (!parent || typeof parent !== 'object') return;
  delete parent[p[p.length - 1]];
  if (p.length > 1 && Object.keys(parent).length === 0) remove(obj, p.slice(0, -1));
}

const fieldId = (f) => 'f-' + f.path.join('-');
const pointerOf = (f) => '/' + f.path.join('/');

function shown(f, value) {
  if (value === undefined || value === null) return '';
  if (f.kind === 'lines') return Array.isArray(value) ? value.join('\n') : String(value);
  if (f.kind === 'pairs') {
    return value && typeof value === 'object'
      ? Object.entries(value).map(([k, v]) => `${k} = ${v}`).join('\n') : String(value);
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

// One field: label, control, hint and the place its error goes.
function control(f, value, readOnly) {
  const id = fieldId(f);
  const describedBy = [f.hint ? 'hint-' + id : null, 'err-' + id].filter(Boolean).join(' ');
  const common = { id, name: id, 'aria-describedby': describedBy, disabled: readOnly,
    'aria-required': f.required ? 'true' : null };
  let input;
  if (f.kind === 'bool') {
    input = h('input', { ...common, type: 'checkbox', checked: value === true });
  } else if (f.kind === 'select') {
    input = h('select', common,
      h('option', { value: '' }, f.required ? 'Choose…' : '(default)'),
      f.options.map((o) => h('option', { value: o, selected: value === o }, o)));
    if (value !== undefined && value !== null && !f.options.includes(value)) {
      input.append(h('option', { value: String(value), selected: true }, String(value)));
    }
  } else if (['lines', 'pairs', 'textarea'].includes(f.kind)) {
    input = h('textarea', { ...common, rows: f.kind === 'textarea' ? 6 : 3, spellcheck: 'false' });
    input.value = shown(f, value);
  } else {
    const type = f.kind === 'secret' ? 'password' : f.kind === 'url' ? 'url' : 'text';
    input = h('input', { ...common, type, autocomplete: 'off', spellcheck: 'false',
      inputmode: f.kind === 'number' ? 'numeric' : null });
    input.value = shown(f, value);
  }
  const label = h('label', { for: id }, f.label, f.required ? h('span', { class: 'req' }, ' (required)') : null);
  const wrapper = h('div', { class: f.kind === 'bool' ? 'field field-bool' : 'field', 'data-pointer': pointerOf(f) },
    f.kind === 'bool' ? [input, label] : [label, input],
    f.hint ? h('p', { class: 'hint', id: 'hint-' + id }, f.hint) : null,
    h('p', { class: 'field-error', id: 'err-' + id, hidden: true }));
  return { f, input, wrapper, had: value !== undefined };
}

// The value of a field as the definition takes it; undefined removes the key. Throws a
// message for a line the form cannot read.
function read(c) {
  const { f, input } = c;
  if (f.kind === 'bool') return input.checked ? true : (c.had ? false : undefined);
  const raw = input.value;
  if (f.kind === 'textarea') return raw.trim() === '' ? undefined : raw;
  const text = raw.trim();
  if (text === '') return undefined;
  if (f.kind === 'number') return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  if (f.kind === 'lines') return text.split('\n').map((l) => l.trim()).filter(Boolean);
  if (f.kind === 'pairs') {
    const out = {};
    text.split('\n').map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
      const at = line.indexOf('=');
      if (at <= 0) throw new Error(`line ${i + 1}: write it as name = value`);
      const v = line.slice(at + 1).trim();
      out[line.slice(0, at).trim()] = f.numbers && /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    });
    return out;
  }
  return text;
}

function showError(c, message) {
  const err = c.wrapper.querySelector('.field-error');
  err.textContent = message;
  err.hidden = false;
  c.input.setAttribute('aria-invalid', 'true');
  const details = c.wrapper.closest('details');
  if (details) details.open = true;
}

function clearErrors(controls, general) {
  for (const c of controls) {
    const err = c.wrapper.querySelector('.field-error');
    err.textContent = '';
    err.hidden = true;
    c.input.removeAttribute('aria-invalid');
  }
  replace(general);
  general.hidden = true;
}

// Shows an API error: each detail at its field, the rest (and the message) above the form.
export function showApiError(error, controls, general) {
  const unplaced = [];
  let first = null;
  for (const d of error.details || []) {
    const pointer = String(d.pointer || '');
    let best = null;
    for (const c of controls) {
      const p = pointerOf(c.f);
      if ((pointer === p || pointer.startsWith(p + '/')) && (!best || p.length > pointerOf(best.f).length)) best = c;
    }
    if (best) {
      showError(best, pointer === pointerOf(best.f) ? d.message : `${pointer.slice(pointerOf(best.f).length + 1)}: ${d.message}`);
      first = first || best;
    } else {
      unplaced.push(pointer ? `${pointer}: ${d.message}` : d.message);
    }
  }
  replace(general, h('p', {}, error.message),
    unplaced.length ? h('ul', {}, unplaced.map((m) => h('li', {}, m))) : null);
  general.hidden = false;
  // The first field in error, in the form's order.
  const firstInForm = first && controls.find((c) => c.input.getAttribute('aria-invalid') === 'true');
  (firstInForm ? firstInForm.input : general).focus();
}

// The form. `definition` is the destination as read (null for a new one); `onSaved(view)`
// runs after a successful PUT.
export function destinationForm(project, definition, onSaved) {
  const isNew = !definition;
  const readOnly = !isNew && definition.managed_by === 'config_file';
  const general = h('div', { class: 'form-errors', role: 'alert', tabindex: '-1', hidden: true });
  const status = h('p', { class: 'form-status', role: 'status' });
  const typeArea = h('div');
  let controls = [];
  let head = [];
  if (isNew) head = [control(ID_FIELD, undefined, false), control(TYPE_FIELD, 'webhook', false)];

  const type = () => (isNew ? head[1].input.value : definition.type);
  const layout = () => {
    const t = type();
    const own = (TYPE_FIELDS[t] || []).map((f) => control(f, get(definition, f.path), readOnly));
    const sections = COMMON_SECTIONS.map((sec) => ({ sec,
      cs: sec.fields.map((f) => control(f, get(definition, f.path), readOnly)) }));
    controls = [...head, ...own, ...sections.flatMap((x) => x.cs)];
    replace(typeArea,
      t ? h('fieldset', {}, h('legend', {}, `${t} settings`),
        t === 'otlp' && !readOnly ? vendorFiller(own) : null,
        own.map((c) => c.wrapper)) : null,
      sections.map(({ sec, cs }) => h('details', { class: 'section' },
        h('summary', {}, sec.title), cs.map((c) => c.wrapper))));
  };
  if (isNew) head[1].input.addEventListener('change', layout);
  layout();

  const save = h('button', { type: 'submit', class: 'primary' }, isNew ? 'Create destination' : 'Save settings');
  const form = h('form', { class: 'settings', novalidate: true, 'aria-label': isNew ? 'New destination' : 'Settings' },
    general, head.map((c) => c.wrapper), typeArea,
    readOnly ? h('p', { class: 'note' }, 'This destination is defined in courier\'s configuration file; change it there.') : h('div', { class: 'actions' }, save),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (readOnly) return;
    clearErrors(controls, general);
    const body = isNew ? {} : structuredClone(definition);
    delete body.managed_by;
    let local = false;
    for (const c of controls) {
      try {
        const v = read(c);
        if (v === undefined) remove(body, c.f.path); else set(body, c.f.path, v);
      } catch (e) {
        showError(c, e.message);
        local = true;
      }
    }
    if (local) {
      const bad = controls.find((c) => c.input.getAttribute('aria-invalid') === 'true');
      if (bad) bad.input.focus();
      return;
    }
    const id = isNew ? String(body.id || '') : definition.id;
    if (isNew && !id) {
      showApiError(new ApiError(422, 'validation_failed', 'the destination definition is not valid',
        [{ pointer: '/id', message: 'is required' }]), controls, general);
      return;
    }
    save.disabled = true;
    status.textContent = 'Saving…';
    try {
      const view = await call('PUT', path('projects', project, 'destinations', id), body);
      status.textContent = 'Saved.';
      onSaved(view);
    } catch (e) {
      status.textContent = '';
      if (e instanceof ApiError) showApiError(e, controls, general);
      else throw e;
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// OTLP: fills endpoint and the API key header's name for a vendor (docs/sinks.md).
function vendorFiller(own) {
  const select = h('select', { id: 'otlp-vendor' }, h('option', { value: '' }, 'Choose a vendor…'),
    Object.keys(OTLP_VENDORS).map((v) => h('option', { value: v }, v)));
  const fill = h('button', { type: 'button' }, 'Fill in');
  fill.addEventListener('click', () => {
    const v = OTLP_VENDORS[select.value];
    if (!v) return;
    const endpoint = own.find((c) => c.f.path[0] === 'endpoint');
    const headers = own.find((c) => c.f.path[0] === 'headers');
    endpoint.input.value = v.endpoint;
    if (!headers.input.value.includes(v.header)) {
      headers.input.value = (headers.input.value.trim() ? headers.input.value.trim() + '\n' : '') + `${v.header} = `;
    }
    headers.input.focus();
  });
  return h('div', { class: 'field vendor' }, h('label', { for: 'otlp-vendor' }, 'Vendor preset'), h('div', { class: 'inline' }, select, fill));
}
