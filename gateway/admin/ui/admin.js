// Sluice admin UI: plain browser JavaScript, no framework. A hash router picks a view; the gateway's
// /v1/admin/events stream (read with fetch so it can carry the API key) pushes a cluster snapshot
// every poll, and the current view redraws its live part from it. All text goes in via
// textContent, never as HTML.
'use strict';

(function () {
  const HISTORY_MS = 10 * 60 * 1000;
  const state = { snapshot: null, history: { topics: {}, channels: {} }, key: sessionStorage.getItem('sluice-admin-key') || '', view: null };
  const view = document.getElementById('view');
  const flash = document.getElementById('flash');
  const liveBadge = document.getElementById('live');

  // ---- DOM helpers ----
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return el;
  }
  const fmt = (n) => (n === null || n === undefined ? '–' : typeof n === 'number' ? (Number.isInteger(n) ? n.toLocaleString('en') : n.toFixed(1)) : String(n));
  const enc = encodeURIComponent;
  const topicHref = (t) => '#/topic/' + enc(t);
  const channelHref = (t, c) => '#/topic/' + enc(t) + '/' + enc(c);
  function table(headers, rows, empty) {
    if (rows.length === 0) return h('div', { class: 'box empty', text: empty || 'nothing yet' });
    return h('div', { class: 'box' }, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', { text: x })))), h('tbody', {}, rows)));
  }
  const cell = (field, value, cls) => h('td', { 'data-field': field, class: cls }, value instanceof Node ? value : fmt(value));
  // Consumers of both kinds in one cell: TCP clients (the shards' /stats clients) / HTTP consumers
  // (SSE streams and waiting long-polls, as the gateways report them to the shards).
  const consumersCell = (tcp, http) => h('td', { 'data-field': 'consumers', title: 'TCP clients / HTTP consumers (SSE streams + long-polls)' }, fmt(tcp) + ' / ' + fmt(http || 0));
  const pausedCell = (p, some) => cell('paused', p ? 'paused' : some ? 'partly' : 'no', p || some ? 'paused' : '');
  // `readError`: a failed read of the cluster, cleared by the next good one (an action's outcome stays)
  function say(text, isError, readError) {
    flash.textContent = text;
    flash.className = isError ? 'error' : '';
    flash.dataset.read = readError ? '1' : '';
  }
  function uptime(s) {
    if (typeof s !== 'number') return '–';
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    return (d ? d + 'd ' : '') + (d || hh ? hh + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }

  // ---- charts: inline SVG, last minutes of [t, rate, depth] points ----
  const SVG = 'http://www.w3.org/2000/svg';
  function sparkline(points, index, cls) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 100 30');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('class', cls || 'spark');
    const pts = (points || []).filter((p) => p[index] !== null);
    if (pts.length < 2) return svg;
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
    const max = Math.max(1, ...pts.map((p) => p[index]));
    const xy = pts.map((p) => [((p[0] - t0) / Math.max(1, t1 - t0)) * 100, 29 - (p[index] / max) * 27]);
    const line = xy.map(([x, y]) => x.toFixed(2) + ',' + y.toFixed(2)).join(' ');
    const area = document.createElementNS(SVG, 'polygon');
    area.setAttribute('class', 'area');
    area.setAttribute('points', '0,30 ' + line + ' 100,30');
    const pl = document.createElementNS(SVG, 'polyline');
    pl.setAttribute('class', 'line');
    pl.setAttribute('points', line);
    svg.append(area, pl);
    return svg;
  }
  function charts(points) {
    const last = points && points.length ? points[points.length - 1] : null;
    const one = (label, index, unit) =>
      h('div', { class: 'chart' }, h('div', { class: 'label' }, h('span', { text: label }), h('span', { text: last ? fmt(last[index]) + unit : '' })), sparkline(points, index, 'big'));
    return h('div', { class: 'charts' }, one('message rate, last minutes', 1, ' msg/s'), one('depth', 2, ''));
  }

  // ---- the API ----
  async function api(path, method) {
    const headers = {};
    if (state.key) headers.authorization = 'Bearer ' + state.key;
    const res = await fetch(path, { method: method || 'GET', headers, cache: 'no-store' });
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (res.status === 401 || res.status === 403) askForKey();
    if (!res.ok) {
      const e = new Error((body && body.error && body.error.code) || 'HTTP ' + res.status);
      e.body = body;
      throw e;
    }
    return body;
  }
  function askForKey() {
    document.getElementById('key-form').hidden = false;
    document.getElementById('key-input').focus();
  }
  document.getElementById('key-button').addEventListener('click', askForKey);
  document.getElementById('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.key = document.getElementById('key-input').value.trim();
    sessionStorage.setItem('sluice-admin-key', state.key);
    document.getElementById('key-form').hidden = true;
    connectLive();
    refresh();
  });

  async function act(question, path) {
    if (!window.confirm(question)) return;
    try {
      const r = await api(path, 'POST');
      say(r.action + ' ' + (r.channel ? r.topic + '/' + r.channel : r.topic) + ': ' + r.result + ' (' + r.steps.map((s) => s.target).join(', ') + ')');
    } catch (err) {
      const d = err.body && err.body.error && err.body.error.details;
      say('failed: ' + err.message + (d && d.steps ? ' — ' + d.steps.map((s) => s.target + ' ' + (s.ok ? 'ok' : s.error)).join(', ') : ''), true);
    }
    await refresh();
  }
  const topicPath = (t) => '/v1/admin/topics/' + enc(t);
  const channelPath = (t, c) => topicPath(t) + '/channels/' + enc(c);

  // ---- live updates: one stream per tab; the gateway polls the shards once for every viewer ----
  let stream = null;
  async function connectLive() {
    if (stream) stream.abort();
    const ac = (stream = new AbortController());
    const headers = { accept: 'text/event-stream' };
    if (state.key) headers.authorization = 'Bearer ' + state.key;
    try {
      const res = await fetch('/v1/admin/events', { headers, signal: ac.signal, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        liveBadge.textContent = 'API key needed';
        askForKey();
        return;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      liveBadge.textContent = 'live';
      liveBadge.className = 'live on';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) !== -1) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (_) {
      if (ac.signal.aborted) return;
    }
    if (ac !== stream) return;
    liveBadge.textContent = 'reconnecting…';
    liveBadge.className = 'live';
    setTimeout(() => ac === stream && connectLive(), 2000);
  }
  function onEvent(block) {
    let event = 'message', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data) return;
    const msg = JSON.parse(data);
    if (event === 'hello') {
      state.history = msg.history;
      if (msg.snapshot) update(msg.snapshot);
    } else if (event === 'snapshot') {
      remember(msg);
      update(msg);
    }
  }
  function remember(s) {
    const push = (m, k, p) => {
      const list = m[k] || (m[k] = []);
      list.push(p);
      while (list.length && list[0][0] < s.at - HISTORY_MS) list.shift();
    };
    for (const t of s.topics) {
      push(state.history.topics, t.name, [s.at, t.rate, t.total_depth]);
      for (const c of t.channels) push(state.history.channels, t.name + '/' + c.name, [s.at, c.rate, c.depth]);
    }
  }
  function update(s) {
    if (flash.dataset.read === '1') say('');
    state.snapshot = s;
    if (state.view && state.view.update) state.view.update(s);
  }
  async function refresh() {
    try {
      update(await api('/v1/admin/cluster'));
    } catch (err) {
      say('cannot read the cluster: ' + err.message, true, true);
    }
  }

  // ---- views: each has a static part (drawn once) and update(snapshot) for the live part ----
  function topicsView() {
    const live = h('div');
    const name = h('input', { placeholder: 'new topic name', 'aria-label': 'new topic name', required: true, pattern: '[.a-zA-Z0-9_\\-]+(#ephemeral)?', maxlength: 64 });
    const form = h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); act('Create topic ' + name.value + '?', topicPath(name.value) + '/create'); } }, name, h('button', { type: 'submit', text: 'Create topic' }));
    view.replaceChildren(h('h1', { text: 'Topics' }), live, form);
    return {
      update(s) {
        const rows = s.topics.map((t) =>
          h('tr', { 'data-topic': t.name },
            h('td', {}, h('a', { href: topicHref(t.name), text: t.name })),
            cell('depth', t.depth), cell('total_depth', t.total_depth), cell('in_flight', t.in_flight_count), cell('rate', t.rate),
            h('td', {}, sparkline(state.history.topics[t.name], 1)),
            cell('messages', t.message_count), cell('channels', t.channels.length), cell('shards', t.shards.length), pausedCell(t.paused, t.paused_shards.length > 0)));
        live.replaceChildren(table(['topic', 'depth', 'total depth', 'in flight', 'msg/s', 'trend', 'messages', 'channels', 'shards', 'paused'], rows, 'no topics yet: publish something'), shardProblems(s));
      },
    };
  }
  function shardProblems(s) {
    const bad = s.shards.filter((x) => !x.ok);
    return bad.length ? h('p', { class: 'bad', text: 'not answering: ' + bad.map((x) => x.address + ' (' + x.error + ')').join(', ') }) : '';
  }

  function topicView(topic) {
    const live = h('div');
    const actions = h('div', { class: 'actions' });
    const chan = h('input', { placeholder: 'new channel name', 'aria-label': 'new channel name', required: true, maxlength: 64 });
    const form = h('form', { class: 'inline', onsubmit: (ev) => { ev.preventDefault(); act('Create channel ' + chan.value + ' on every shard of ' + topic + '?', channelPath(topic, chan.value) + '/create'); } }, chan, h('button', { type: 'submit', text: 'Create channel' }));
    view.replaceChildren(h('div', { class: 'crumbs' }, h('a', { href: '#/topics', text: 'Topics' })), h('h1', { text: topic }), actions, live, form);
    return {
      update(s) {
        const t = s.topics.find((x) => x.name === topic);
        if (!t) return live.replaceChildren(h('div', { class: 'box empty', text: 'no shard holds this topic (any more)' }));
        actions.replaceChildren(
          t.paused ? h('button', { 'data-action': 'unpause', onclick: () => act('Unpause topic ' + topic + ' on every shard?', topicPath(topic) + '/unpause'), text: 'Unpause' })
            : h('button', { 'data-action': 'pause', onclick: () => act('Pause topic ' + topic + ' on every shard? Messages stop flowing to its channels.', topicPath(topic) + '/pause'), text: 'Pause' }),
          h('button', { 'data-action': 'empty', class: 'danger', onclick: () => act('Empty topic ' + topic + '? Its queued messages are lost.', topicPath(topic) + '/empty'), text: 'Empty' }),
          h('button', { 'data-action': 'delete', class: 'danger', onclick: () => act('Delete topic ' + topic + ' and all its channels on every shard?', topicPath(topic) + '/delete'), text: 'Delete' }));
        const channels = t.channels.map((c) =>
          h('tr', { 'data-channel': c.name },
            h('td', {}, h('a', { href: channelHref(topic, c.name), text: c.name })),
            cell('depth', c.depth), cell('in_flight', c.in_flight_count), cell('deferred', c.deferred_count), cell('requeued', c.requeue_count), cell('timed_out', c.timeout_count),
            consumersCell(c.client_count, c.http_consumer_count), cell('rate', c.rate), h('td', {}, sparkline(state.history.channels[topic + '/' + c.name], 1)), pausedCell(c.paused, c.paused_shards.length > 0)));
        const perShard = [];
        for (const c of t.channels) for (const r of c.shards) perShard.push(h('tr', {}, h('td', { text: c.name }), cell('shard', r.shard), cell('depth', r.depth), cell('in_flight', r.in_flight_count), cell('deferred', r.deferred_count), consumersCell(r.client_count, r.http_consumer_count), pausedCell(r.paused)));
        const shards = t.shards.map((r) =>
          h('tr', { 'data-shard': r.shard }, h('td', { text: r.shard }), cell('depth', r.depth), cell('messages', r.message_count), cell('channels', r.channel_count), pausedCell(r.paused),
            h('td', {}, h('button', { onclick: () => act('Tombstone ' + r.shard + ' for ' + topic + ' at every lookup? Consumers stop finding it there for a while.', topicPath(topic) + '/tombstone?shard=' + enc(r.shard)), text: 'Tombstone' }))));
        live.replaceChildren(
          charts(state.history.topics[topic]),
          h('h2', { text: 'Channels' }), table(['channel', 'depth', 'in flight', 'deferred', 'requeued', 'timed out', 'consumers (TCP / HTTP)', 'msg/s', 'trend', 'paused'], channels, 'no channels: messages wait in the topic'),
          h('h2', { text: 'Channels on each shard' }), table(['channel', 'shard', 'depth', 'in flight', 'deferred', 'consumers (TCP / HTTP)', 'paused'], perShard),
          h('h2', { text: 'Shards' }), table(['shard', 'topic depth', 'messages', 'channels', 'paused', ''], shards), shardProblems(s));
      },
    };
  }

  function channelView(topic, channel) {
    const live = h('div');
    const actions = h('div', { class: 'actions' });
    const clientsBox = h('div', {}, h('div', { class: 'box empty', text: 'loading consumers…' }));
    const httpBox = h('div', { id: 'http-consumers' }, h('div', { class: 'box empty', text: 'loading consumers…' }));
    view.replaceChildren(h('div', { class: 'crumbs' }, h('a', { href: '#/topics', text: 'Topics' }), ' / ', h('a', { href: topicHref(topic), text: topic })), h('h1', { text: channel }), actions, live,
      h('h2', { text: 'TCP consumers (clients)' }), clientsBox, h('h2', { text: 'HTTP consumers (SSE streams, long-polls)' }), httpBox);
    const p = channelPath(topic, channel);
    async function loadClients() {
      try {
        const r = await api(p);
        const rows = [];
        for (const sh of r.channel.shards) for (const c of sh.clients || []) rows.push(h('tr', {}, h('td', { text: c.client_id || c.hostname || '' }), cell('shard', sh.shard), cell('remote', c.remote_address), cell('agent', c.user_agent || ''), cell('rdy', c.ready_count), cell('in_flight', c.in_flight_count), cell('messages', c.message_count), cell('finished', c.finish_count), cell('requeued', c.requeue_count), cell('tls', c.tls ? 'yes' : 'no')));
        clientsBox.replaceChildren(table(['client', 'shard', 'address', 'user agent', 'ready', 'in flight', 'messages', 'finished', 'requeued', 'tls'], rows, 'no TCP consumers'));
      } catch (_) { /* shown by the live part */ }
    }
    // One row per gateway (it reports to every shard of the topic; the freshest report is shown).
    function drawHttp(c) {
      const rows = (c.http_consumers || []).map((g) =>
        h('tr', { 'data-gateway': g.gateway_id }, h('td', { text: g.gateway_id }), cell('address', g.gateway_address || '–'), cell('streams', g.streams), cell('long_polls', g.long_polls),
          cell('in_flight', g.in_flight), cell('held', g.held), h('td', { 'data-field': 'shards', title: g.shards.join(', ') }, String(g.shards.length)), cell('age', (g.age_ms / 1000).toFixed(1) + ' s')));
      httpBox.replaceChildren(table(['gateway', 'address', 'SSE streams', 'long-polls', 'in flight', 'held', 'shards', 'last report'], rows, 'no HTTP consumers (gateways report theirs every few seconds)'));
    }
    let lastClients = 0;
    return {
      update(s) {
        const t = s.topics.find((x) => x.name === topic);
        const c = t && t.channels.find((x) => x.name === channel);
        if (!c) {
          httpBox.replaceChildren();
          return live.replaceChildren(h('div', { class: 'box empty', text: 'no shard holds this channel (any more)' }));
        }
        actions.replaceChildren(
          c.paused ? h('button', { 'data-action': 'unpause', onclick: () => act('Unpause channel ' + channel + '?', p + '/unpause'), text: 'Unpause' })
            : h('button', { 'data-action': 'pause', onclick: () => act('Pause channel ' + channel + ' on every shard? Delivery stops; messages wait.', p + '/pause'), text: 'Pause' }),
          h('button', { 'data-action': 'empty', class: 'danger', onclick: () => act('Empty channel ' + channel + '? Its queued messages are lost.', p + '/empty'), text: 'Empty' }),
          h('button', { 'data-action': 'delete', class: 'danger', onclick: () => act('Delete channel ' + channel + ' on every shard?', p + '/delete'), text: 'Delete' }));
        const sum = h('tr', { 'data-channel': channel }, h('td', { text: 'all shards' }), cell('depth', c.depth), cell('in_flight', c.in_flight_count), cell('deferred', c.deferred_count), cell('requeued', c.requeue_count), cell('timed_out', c.timeout_count), consumersCell(c.client_count, c.http_consumer_count), cell('messages', c.message_count), cell('rate', c.rate), pausedCell(c.paused, c.paused_shards.length > 0));
        const rows = c.shards.map((r) => h('tr', { 'data-shard': r.shard }, h('td', { text: r.shard }), cell('depth', r.depth), cell('in_flight', r.in_flight_count), cell('deferred', r.deferred_count), cell('requeued', r.requeue_count), cell('timed_out', r.timeout_count), consumersCell(r.client_count, r.http_consumer_count), cell('messages', r.message_count), cell('rate', ''), pausedCell(r.paused)));
        live.replaceChildren(charts(state.history.channels[topic + '/' + channel]), h('h2', { text: 'Counts' }), table(['', 'depth', 'in flight', 'deferred', 'requeued', 'timed out', 'consumers (TCP / HTTP)', 'messages', 'msg/s', 'paused'], [sum, ...rows]), shardProblems(s));
        drawHttp(c);
        if (Date.now() - lastClients > 4000) {
          lastClients = Date.now();
          void loadClients();
        }
      },
    };
  }

  // A page that reads one admin endpoint at most every 4 s and shows it as a table.
  function polledTableView(title, path, what, toTable) {
    let live = h('div', { class: 'box empty', text: 'loading…' });
    view.replaceChildren(h('h1', { text: title }), live);
    let last = 0;
    return {
      async update() {
        if (Date.now() - last < 4000) return;
        last = Date.now();
        try {
          const box = toTable(await api(path));
          live.replaceWith(box);
          live = box;
        } catch (err) {
          say('cannot read ' + what + ': ' + err.message, true, true);
        }
      },
    };
  }

  function shardsView() {
    return polledTableView('Shards', '/v1/admin/shards', 'shards', (r) => {
      const rows = r.shards.map((s) => h('tr', { 'data-shard': s.address }, h('td', { text: s.address }), cell('ok', s.ok ? 'up' : s.error || 'down', s.ok ? 'good' : 'bad'), cell('health', s.health || '–'), cell('version', s.version || '–'), cell('hostname', s.hostname || '–'), cell('tcp_port', s.tcp_port), cell('uptime', uptime(s.uptime_s)), cell('topics', s.topic_count), cell('breaker', s.breaker), cell('ms', s.ms),
        h('td', {}, h('a', { href: '/v1/admin/shards/' + enc(s.address) + '/stats?format=json', text: 'stats' }))));
      return table(['shard', 'state', 'health', 'version', 'hostname', 'tcp port', 'uptime', 'topics', 'breaker', 'ms', ''], rows, 'no shards known: is a lookup configured?');
    });
  }

  function lookupsView() {
    return polledTableView('Lookups', '/v1/admin/lookups', 'lookups', (r) => {
      const rows = r.lookups.map((l) => h('tr', { 'data-lookup': l.address }, h('td', { text: l.address }), cell('ok', l.ok ? 'up' : l.error || 'down', l.ok ? 'good' : 'bad'), cell('version', l.version || '–'), cell('nodes', l.nodes), cell('polled', l.last_poll_ok ? 'ok' : 'failing', l.last_poll_ok ? 'good' : 'bad')));
      return table(['lookup', 'state', 'version', 'nodes', "gateway's last poll"], rows, 'no lookups configured (shards given with --shard-http-address)');
    });
  }

  // ---- routing ----
  function route() {
    const parts = (location.hash.replace(/^#\/?/, '') || 'topics').split('/').map(decodeURIComponent);
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.getAttribute('data-nav') === (parts[0] === 'topic' ? 'topics' : parts[0]));
    if (parts[0] === 'topic' && parts[1] && parts[2]) state.view = channelView(parts[1], parts[2]);
    else if (parts[0] === 'topic' && parts[1]) state.view = topicView(parts[1]);
    else if (parts[0] === 'shards') state.view = shardsView();
    else if (parts[0] === 'lookups') state.view = lookupsView();
    else state.view = topicsView();
    if (state.snapshot) state.view.update(state.snapshot);
    else void refresh();
  }
  window.addEventListener('hashchange', () => {
    say('');
    route();
  });
  route();
  void connectLive();
  window.sluiceAdmin = state;
})();
