// The coordinator's dashboard: sweeps with live progress, a sweep's results and jobs, a job's
// events, timings, worker and provenance. Reads only the coordinator's JSON API (/api/...),
// polling every 2 s. With a client token configured the API wants "Authorization: Bearer
// <token>": the page asks for it once and keeps it in sessionStorage.
(function () {
  'use strict';
  const R = window.BitsweepRender;
  const el = R.el;
  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');
  const kTokenKey = 'bitsweep-token';
  const kPollMs = 2000;
  let timer = null;
  let lastResults = null;  // JSON text of the results shown, so a poll redraws only on change
  let resultsState = {};   // the results table's filters and sorting, kept across redraws

  class AuthError extends Error {}

  async function api(path) {
    const headers = {};
    const token = sessionStorage.getItem(kTokenKey);
    if (token) headers['Authorization'] = 'Bearer ' + token;
    const r = await fetch(path, { headers });
    if (r.status === 401) throw new AuthError(await r.text());
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  // Every page of a paged listing (?page_token=<next_page_token> until it is ""): the first
  // page's body with `key`'s items of every page.
  async function apiAll(path, key) {
    const sep = path.includes('?') ? '&' : '?';
    const first = await api(path);
    let next = first.next_page_token;
    while (next) {
      const page = await api(path + sep + 'page_token=' + encodeURIComponent(next));
      first[key] = first[key].concat(page[key]);
      next = page.next_page_token;
    }
    delete first.next_page_token;
    return first;
  }

  function askToken(message) {
    stop();
    main.textContent = '';
    const input = el('input', { type: 'password', id: 'token', placeholder: 'client bearer token',
                                autocomplete: 'off' });
    main.appendChild(el('form', { class: 'token', onsubmit: (e) => {
      e.preventDefault();
      sessionStorage.setItem(kTokenKey, input.value);
      route();
    } }, [el('label', { for: 'token', text: 'Token: ' }), input,
          el('button', { type: 'submit', text: 'Open' })]));
    main.appendChild(el('p', { class: 'hint', text: message ||
      'This coordinator requires its client token (bitsweep-coordinator --client-token).' }));
    input.focus();
  }

  function when(unixSeconds) {
    return unixSeconds ? new Date(unixSeconds * 1000).toLocaleString() : '';
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '';
    if (seconds < 60) return seconds.toFixed(1) + ' s';
    if (seconds < 3600) return (seconds / 60).toFixed(1) + ' min';
    return (seconds / 3600).toFixed(2) + ' h';
  }

  // A running job's progress: percent and phase, time since its lease and the estimate left.
  function jobProgress(j) {
    if (j.state !== 'LEASED') return '';
    let text = `${(100 * j.progress).toFixed(0)}% ${j.phase}`;
    if (j.elapsed_seconds > 0) text += `, ${duration(j.elapsed_seconds)} elapsed`;
    if (j.eta_seconds > 0) text += `, ~${duration(j.eta_seconds)} left`;
    return text;
  }

  function sweepStatus(s) {
    if (s.state === 'CANCELED') return 'canceled';
    if (!s.finished) return 'running';
    return s.failed > 0 ? 'failed' : 'finished';
  }

  function progressBar(s) {
    const bar = el('div', { class: 'progress', title:
      `${s.succeeded} succeeded, ${s.failed} failed, ${s.canceled} canceled, ${s.skipped || 0} skipped, ${s.leased} running, ${s.pending} pending` });
    for (const k of ['succeeded', 'failed', 'canceled', 'skipped', 'leased']) {
      if (s.total > 0 && s[k] > 0) {
        bar.appendChild(el('span', { class: k, style: `width: ${(100 * s[k] / s.total).toFixed(2)}%` }));
      }
    }
    return bar;
  }

  // Jobs that ended: succeeded, failed, canceled, or skipped by the sweep's early_abort rule.
  function done(s) {
    return s.succeeded + s.failed + s.canceled + (s.skipped || 0);
  }

  // What the sweep's early_abort rule saved, or nothing when it skipped no job.
  function earlyAbort(s) {
    if (!s.skipped) return null;
    return el('p', { id: 'early-abort', 'data-skipped': String(s.skipped),
                     'data-saved-seconds': String(s.saved_worker_seconds),
                     text: `Early abort skipped ${s.skipped} job${s.skipped === 1 ? '' : 's'} ` +
                           `of diverged models, saving ~${duration(s.saved_worker_seconds)} of worker time.` });
  }

  function sweepRow(s) {
    const st = sweepStatus(s);
    return el('tr', { 'data-sweep-id': String(s.id) }, [
      el('td', {}, el('a', { href: '#/sweep/' + s.id, text: String(s.id) })),
      el('td', {}, el('a', { href: '#/sweep/' + s.id, text: R.sweepName(s) })),
      el('td', {}, el('span', { class: 'badge sweep-status ' + st, text: st })),
      el('td', {}, progressBar(s)),
      el('td', { class: 'num', text: `${done(s)}/${s.total}` }),
      el('td', { class: 'num', text: String(s.succeeded) }),
      el('td', { class: 'num', text: String(s.failed) }),
      el('td', { class: 'num', text: String(s.canceled) }),
      el('td', { class: 'num', text: String(s.leased) }),
      el('td', { class: 'num', text: String(s.pending) }),
      el('td', { text: when(s.created_at) }),
      el('td', { text: sweepTiming(s) }),
    ]);
  }

  // An unfinished sweep's elapsed time and the estimate left at the rate its jobs finished so
  // far (as `bitsweep status` prints them).
  function sweepTiming(s) {
    if (s.finished || !s.created_at) return '';
    const elapsed = Math.max(0, Date.now() / 1000 - s.created_at);
    const finished = done(s);
    const eta = finished > 0 ? `~${duration(elapsed * (s.total - finished) / finished)} left` : 'estimate after the first job';
    return `${duration(elapsed)} elapsed, ${eta}`;
  }

  function sweepHead() {
    return el('thead', {}, el('tr', {}, ['id', 'name', 'status', 'progress', 'done', 'succeeded',
      'failed', 'canceled', 'running', 'pending', 'created', 'time'].map((h) => el('th', { text: h }))));
  }

  async function showSweeps() {
    const data = await apiAll('/api/sweeps', 'sweeps');
    main.textContent = '';
    main.appendChild(el('h2', { text: 'Sweeps' }));
    if (data.sweeps.length === 0) {
      main.appendChild(el('p', { class: 'empty', text: 'No sweeps yet (bitsweep submit SWEEP.yaml).' }));
      return;
    }
    main.appendChild(el('table', { id: 'sweeps' }, [sweepHead(), el('tbody', {}, data.sweeps.map(sweepRow))]));
  }

  function jobsTable(jobs) {
    const head = el('thead', {}, el('tr', {}, ['job', 'quantization', 'task', 'state', 'attempt',
      'worker', 'progress', 'error'].map((h) => el('th', { text: h }))));
    return el('table', { id: 'jobs' }, [head, el('tbody', {}, jobs.map((j) => el('tr', { 'data-job-id': String(j.id) }, [
      el('td', {}, el('a', { href: '#/job/' + j.id, text: String(j.id) })),
      el('td', { text: j.quantization }),
      el('td', { text: j.task }),
      el('td', {}, el('span', { class: 'badge ' + j.state, text: j.state.toLowerCase() })),
      el('td', { class: 'num', text: `${j.attempt}/${j.max_attempts}` }),
      el('td', { text: j.worker }),
      el('td', { text: jobProgress(j) }),
      el('td', { class: 'error', text: j.error }),
    ])))]);
  }

  function resultsView(table) {
    const text = JSON.stringify(table);
    let box = document.getElementById('results');
    if (box && text === lastResults) return box;
    lastResults = text;
    const fresh = el('section', { id: 'results' });
    R.renderResults(fresh, table, { jobHref: (id) => '#/job/' + id, state: resultsState });
    if (box) box.replaceWith(fresh);
    return fresh;
  }

  async function showSweep(id) {
    const [data, results] = await Promise.all([apiAll('/api/sweeps/' + id, 'jobs'),
                                               api('/api/results/table?sweep=' + id)]);
    const s = data.sweep;
    const st = sweepStatus(s);
    let top = document.getElementById('sweep-top');
    const freshTop = el('section', { id: 'sweep-top' }, [
      el('h2', {}, [`Sweep ${s.id}: ${R.sweepName(s)} `, el('span', { class: 'badge sweep-status ' + st, id: 'sweep-status', text: st })]),
      el('table', {}, [sweepHead(), el('tbody', {}, sweepRow(s))]),
    ]);
    const saved = earlyAbort(s);
    if (saved) freshTop.appendChild(saved);
    if (!top) {
      main.textContent = '';
      lastResults = null;
      main.appendChild(freshTop);
      main.appendChild(resultsView(results.table));
      main.appendChild(el('h2', { text: 'Jobs' }));
      main.appendChild(jobsTable(data.jobs));
      return;
    }
    top.replaceWith(freshTop);
    resultsView(results.table);
    document.getElementById('jobs').replaceWith(jobsTable(data.jobs));
  }

  async function showAllResults() {
    const results = await api('/api/results/table');
    if (!document.getElementById('results')) {
      main.textContent = '';
      lastResults = null;
      main.appendChild(el('h2', { text: 'All results' }));
      main.appendChild(resultsView(results.table));
    } else {
      resultsView(results.table);
    }
  }

  function facts(pairs) {
    const dl = el('dl', { class: 'facts' });
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === '') continue;
      dl.appendChild(el('dt', { text: k }));
      dl.appendChild(el('dd', {}, typeof v === 'string' ? el('span', { text: v }) : v));
    }
    return dl;
  }

  async function showJob(id) {
    const data = await api('/api/jobs/' + id);
    const j = data.job;
    const ev = data.events;
    const first = (name) => ev.find((e) => e.event === name);
    const last = (pred) => ev.slice().reverse().find(pred);
    const submitted = first('SUBMIT');
    const leased = last((e) => e.event === 'LEASE');
    const ended = last((e) => ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(e.to));
    main.textContent = '';
    main.appendChild(el('h2', {}, [`Job ${j.id}: ${j.quantization} on ${j.task} `,
      el('span', { class: 'badge ' + j.state, id: 'job-state', text: j.state.toLowerCase() })]));
    main.appendChild(facts([
      ['model', j.model], ['quantization', j.quantization], ['task', j.task],
      ['sweep', el('a', { href: '#/sweep/' + j.sweep_id, text: String(j.sweep_id) })],
      ['attempt', `${j.attempt}/${j.max_attempts}`], ['worker', j.worker],
      ['progress', jobProgress(j)],
      ['error', j.error],
      ['submitted', submitted ? when(submitted.at) : ''],
      ['waited', submitted && leased ? duration(leased.at - submitted.at) : ''],
      ['ran', leased && ended ? duration(ended.at - leased.at) : ''],
      ['job key', el('code', { text: j.job_key })],
    ]));
    main.appendChild(el('h2', { text: 'Events' }));
    main.appendChild(el('table', { id: 'events' }, [
      el('thead', {}, el('tr', {}, ['at', 'event', 'from', 'to', 'epoch', 'worker', 'reason'].map((h) => el('th', { text: h })))),
      el('tbody', {}, ev.map((e) => el('tr', {}, [
        el('td', { text: when(e.at) }), el('td', { text: e.event }), el('td', { text: e.from || '' }),
        el('td', { text: e.to }), el('td', { class: 'num', text: String(e.epoch) }),
        el('td', { text: e.worker || '' }), el('td', { text: e.reason }),
      ]))),
    ]));
    if (data.results.length > 0) {
      main.appendChild(el('h2', { text: 'Results' }));
      main.appendChild(el('table', { id: 'job-results' }, [
        el('thead', {}, el('tr', {}, ['metric', 'value', 'stderr', 'n'].map((h) => el('th', { text: h })))),
        el('tbody', {}, data.results.map((r) => el('tr', {}, [
          el('td', { text: r.metric }), el('td', { class: 'num', text: String(r.value) }),
          el('td', { class: 'num', text: String(r.stderr) }), el('td', { class: 'num', text: String(r.n) }),
        ]))),
      ]));
      main.appendChild(el('h2', { text: 'Provenance' }));
      main.appendChild(el('pre', { id: 'provenance', text: JSON.stringify(data.results[0].provenance, null, 2) }));
    }
    main.appendChild(el('h2', { text: 'Spec' }));
    main.appendChild(el('pre', { id: 'spec', text: JSON.stringify(j.spec, null, 2) }));
    return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(j.state) ? 'final' : '';
  }

  function stop() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  let generation = 0;
  async function route() {
    stop();
    const mine = ++generation;
    const hash = location.hash || '#/';
    let m;
    let show;
    if ((m = hash.match(/^#\/sweep\/(\d+)$/))) show = () => showSweep(m[1]);
    else if ((m = hash.match(/^#\/job\/(\d+)$/))) show = () => showJob(m[1]);
    else if (hash === '#/results') show = showAllResults;
    else show = showSweeps;
    main.textContent = '';
    resultsState = {};  // each page starts unfiltered
    const tick = async () => {
      let final = false;
      try {
        final = (await show()) === 'final';
        statusLine.textContent = 'updated ' + new Date().toLocaleTimeString();
        statusLine.className = 'muted';
      } catch (e) {
        if (e instanceof AuthError) { askToken(sessionStorage.getItem(kTokenKey) ? 'The token was refused.' : ''); return; }
        statusLine.textContent = 'error: ' + e.message;
        statusLine.className = 'error';
      }
      // A finished job's page no longer changes; everything else updates live.
      if (mine === generation && !final) timer = setTimeout(tick, kPollMs);
    };
    tick();
  }

  window.addEventListener('hashchange', route);
  route();
})();
