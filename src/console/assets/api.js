// Calls to courier's /v1 API with the signed-in bearer token. The token lives in this tab's
// session storage and travels in the Authorization header only: never a cookie, never a URL.

const KEY = 'courier.console.token';

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(value) {
  sessionStorage.setItem(KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

// An error answer of the API ({"error": {code, message, details: [{pointer, message}]}}), or
// a failure to reach it.
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = Array.isArray(details) ? details : [];
  }
}

// Called when the API answers 401: the page signs out and asks for a token again.
let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

// `path` is a list of segments after /v1, each encoded: ['projects', p, 'destinations'].
export function path(...segments) {
  return '/v1/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

// method, path (from `path`), optional JSON body → the parsed answer; throws ApiError.
export async function call(method, url, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'courier could not be reached: ' + e.message, []);
  }
  const text = await response.text();
  let value = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch {
    value = null;
  }
  if (response.ok) return value;
  const err = (value && value.error) || {};
  const error = new ApiError(
    response.status,
    err.code || 'http_' + response.status,
    err.message || `courier answered ${response.status}`,
    err.details,
  );
  if (response.status === 401) onUnauthorized(error);
  throw error;
}

// Whether an error says the endpoint does not exist on this courier (an older version).
export function missingEndpoint(error) {
  return error instanceof ApiError && error.status === 404 && /no such endpoint/.test(error.message);
}
