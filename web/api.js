// api.js: the admin JSON routes beside this page (SPEC §3), called with the
// token as a Bearer header. Paths are relative to /admin/, so the page works
// wherever a proxy mounts it. No cookies go out (credentials: 'omit') and
// nothing is cached (the routes answer Cache-Control: no-store as well).

export class ApiError extends Error {
  // status 0: digestd did not answer at all.
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${this.token}` },
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'digestd did not answer');
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null; // an empty or non-JSON body: the status says enough
    }
    if (!res.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(res.status, e.code || 'http', e.message || `HTTP ${res.status}`);
    }
    return data;
  }

  queue() { return this.call('GET', 'queue'); }
  procs() { return this.call('GET', 'procs'); }
  pending(limit) { return this.call('GET', `pending?limit=${limit}`); }
  dead(limit) { return this.call('GET', `dead?limit=${limit}`); }
  history(minutes) { return this.call('GET', `history?minutes=${minutes}`); }
  request(id) { return this.call('GET', `requests/${encodeURIComponent(id)}`); }
  requeue(id) { return this.call('POST', `dead/${encodeURIComponent(id)}/requeue`, {}); }
  requeueAll(count) { return this.call('POST', 'dead/requeue-all', { count }); }
}
